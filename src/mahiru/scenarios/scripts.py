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

from mahiru.client.http import TlsIdentity
from mahiru.errors import MahiruError
from mahiru.exit_codes import EXIT_FAILED, exit_code_for
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.workflow import Job
from mahiru.scenarios import compute_to_data
from mahiru.scenarios.setup import PartyCredentials, SiteSpec

InitSite = Callable[[str, PartyCredentials, SiteSpec, Path], int]

#: How long submit_job waits for the job by default (seconds).
JOB_TIMEOUT = 300.0


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


def _submit_parser(scenario: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Submit the {scenario} job at site1, wait for it and check its result."
        " The last line printed is a JSON summary; the exit code is 0 only if the result is"
        f" exactly {compute_to_data.EXPECTED_RESULT}."
    )
    parser.add_argument("--site-url", required=True, help="site1's internal API URL")
    parser.add_argument(
        "--cert", type=Path, required=True, help="a user's (or the admin's) certificate"
    )
    parser.add_argument("--key", type=Path, required=True, help="its private key")
    parser.add_argument("--ca", type=Path, required=True, help="the network CA certificate")
    parser.add_argument(
        "--timeout",
        type=float,
        default=JOB_TIMEOUT,
        help=f"seconds to wait for the job (default {JOB_TIMEOUT:g})",
    )
    return parser


def submit_job_main(
    argv: Sequence[str] | None = None,
    scenario: str = "compute-to-data",
    workflow: Job | None = None,
) -> int:
    """Parse arguments, run the scenario job, print its plan, timeline and summary.

    The job is the compute-to-data one unless `workflow` is given; `scenario`
    names it in the help text.
    """
    args = _submit_parser(scenario).parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    def say(line: str) -> None:
        print(line, flush=True)

    identity = TlsIdentity(args.cert, args.key, args.ca)
    try:
        outcome = compute_to_data.submit_job(args.site_url, identity, args.timeout, say, workflow)
    except MahiruError as error:
        print(f"error: {error.message}", file=sys.stderr)
        print(json.dumps(error.to_dict()))
        return exit_code_for(error)
    summary = outcome.to_json()
    if outcome.ok:
        print(json.dumps(summary))
        return 0
    state = outcome.view.status.state
    if not state.terminal:
        problem = f"the job did not finish within {args.timeout:g} s (it is {state.value})"
    elif outcome.result is None:
        problem = f"the job {state.value}: {outcome.view.status.reason}"
    else:
        problem = f"expected {compute_to_data.EXPECTED_RESULT}, got {outcome.result}"
    print(f"error: {problem}", file=sys.stderr)
    print(json.dumps(summary))
    return EXIT_FAILED
