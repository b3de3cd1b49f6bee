"""Command-line front ends of the scenario client scripts (scenarios/*/client*/*.py).

Each script is a few lines that call one of these with its party and site, so
the scripts stay thin and the logic is tested here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mahiru.errors import MahiruError
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.scenarios.setup import PartyCredentials, SiteSpec

InitSite = Callable[[str, PartyCredentials, SiteSpec, Path], int]


def _init_parser(party: PartyId, site: SiteId) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Register {party} and {site}, upload the site's assets"
        " and add the party's rules."
    )
    parser.add_argument("--registry", required=True, help="the registry's URL")
    parser.add_argument("--internal-url", required=True, help="the site's internal API URL")
    parser.add_argument("--external-url", required=True, help="the site's external API URL")
    parser.add_argument("--site-cert", type=Path, required=True, help="the site's TLS certificate")
    parser.add_argument(
        "--party-dir",
        type=Path,
        required=True,
        help="party.key, party.pub, user-ca.crt and party-client.crt/.key",
    )
    parser.add_argument(
        "--admin-cert", type=Path, required=True, help="an admin user's certificate"
    )
    parser.add_argument("--admin-key", type=Path, required=True, help="its private key")
    parser.add_argument("--ca", type=Path, required=True, help="the network CA certificate")
    parser.add_argument("--assets", type=Path, required=True, help="folder with the asset archives")
    return parser


def init_site_main(
    init_site: InitSite, party: PartyId, site: SiteId, argv: Sequence[str] | None = None
) -> int:
    """Parse arguments, set the site up, print a JSON summary; return the exit code."""
    args = _init_parser(party, site).parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    credentials = PartyCredentials(party, args.party_dir, args.admin_cert, args.admin_key, args.ca)
    spec = SiteSpec(site, args.internal_url, args.external_url, args.site_cert)
    try:
        rules = init_site(args.registry, credentials, spec, args.assets)
    except MahiruError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    print(json.dumps({"party": str(party), "site": str(site), "rules_added": rules}))
    return 0
