"""`mahiru results verify`: check a result's receipt chain, or a job's crate, offline.

    mahiru assets show RESULT --json > result.json     # the result's record, with receipts
    mahiru register show --json > registry.json        # the registry's parties and sites
    mahiru results verify result.json --registry registry.json
    mahiru jobs crate JOB --out job.zip                # the job's RO-Crate (docs/crates.md)
    mahiru results verify job.zip --registry registry.json

Every receipt of the chain must be written in its canonical form and signed
with the key of the registered certificate of the site that says it computed
the result (a certificate issued to that very site); the result must have
the image digest its record names, and every result a step ran on must have
the digest that step's receipt names. A result made under a review rule
(its receipt names the rule) must carry, for each release of it in the chain,
the signed release of the site that made it, the signed rules it lists and a
signed approval of each (docs/receipts.md); each approval is shown: who, for
which party, when, why, and any override. Nothing is asked of any site.
A crate (a zip or its unpacked folder) verifies when every file it names is
there, each receipt chain in it verifies as above, and every image in it has
the digest a verified receipt signs for it (`model/crates/checks.py`).
Exit 0 if the chain verifies, 1 if it does not, 2 for unreadable files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mahiru.cli.connection import echo_json
from mahiru.cli.errors import handle_errors
from mahiru.errors import InvalidInput, MahiruError

# The model and the crypto library are imported where the command runs, not here:
# `--help` needs neither.
if TYPE_CHECKING:
    from mahiru.model.release_checks import ReleaseTrust

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
_RECORD_OR_CRATE = click.Path(exists=True, path_type=Path)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path}: cannot read JSON: {error}") from None


def _trust(registry: Any, path: Path) -> ReleaseTrust:
    """The parties' keys (for the review rules) and the sites' owners (for approvals)."""
    from mahiru.model.identifiers import PartyId
    from mahiru.model.registry import PartyRecord
    from mahiru.services.site.validation import release_trust

    # Only a chain with reviewed releases needs the parties: older files may lack them.
    parties = registry.get("parties", []) if isinstance(registry, dict) else None
    if not isinstance(parties, list):
        raise InvalidInput(f"{path}: expected `mahiru register show --json` output (parties)")
    owners: dict[str, PartyId] = {}
    for site in registry.get("sites", []):
        if isinstance(site, dict) and isinstance(site.get("owner"), str):
            owners[str(site.get("id"))] = PartyId.parse(site["owner"])
    records = [PartyRecord.from_dict(party) for party in parties]
    return release_trust(lambda: records, lambda site: owners.get(str(site)))


def _certificates(registry: Any, path: Path) -> dict[str, str]:
    sites = registry.get("sites") if isinstance(registry, dict) else None
    if not isinstance(sites, list):
        raise InvalidInput(f"{path}: expected `mahiru register show --json` output (with sites)")
    found: dict[str, str] = {}
    for site in sites:
        if isinstance(site, dict) and isinstance(site.get("id"), str):
            certificate = site.get("tls_cert_pem")
            # Which of two records of one site to believe is not for this command to guess.
            if (
                isinstance(certificate, str)
                and found.setdefault(site["id"], certificate) != certificate
            ):
                raise InvalidInput(f"{path}: two different certificates for {site['id']}")
    return found


@click.group("results")
def results_group() -> None:
    """Check workflow results."""


@results_group.command("verify")
@click.argument("record_file", type=_RECORD_OR_CRATE)
@click.option(
    "--registry",
    "registry_file",
    type=_FILE,
    required=True,
    help="The registry's records (`mahiru register show --json`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@handle_errors
def verify_command(record_file: Path, registry_file: Path, as_json: bool) -> None:
    """Check the receipt chain of the result in RECORD_FILE (`mahiru assets show --json`),
    or a job's crate (`mahiru jobs crate`, a zip or its folder) and every file in it."""
    from mahiru.crate_archives import CrateFiles
    from mahiru.model.identifiers import ResultId, parse_identifier
    from mahiru.model.receipts import ReceiptChain
    from mahiru.model.release_checks import verify_result
    from mahiru.pki.signatures import SiteSignatures

    if CrateFiles.is_crate(record_file):
        _verify_crate(record_file, registry_file, as_json)
        return
    record = _load(record_file)
    if not isinstance(record, dict) or not isinstance(record.get("metadata"), dict):
        raise InvalidInput(f"{record_file}: expected `mahiru assets show RESULT --json` output")
    identifier = parse_identifier(str(record.get("id")), ("result",))
    assert isinstance(identifier, ResultId)  # guaranteed by the allowed kind
    digest = str(record.get("image_digest") or "").removeprefix("sha256:")
    registry = _load(registry_file)
    certificates = _certificates(registry, registry_file)
    check = SiteSignatures(lambda site: certificates.get(str(site)))
    try:
        chain = ReceiptChain.from_metadata(record["metadata"])
        trust = _trust(registry, registry_file)
        lines = verify_result(identifier, digest, chain, check, trust, released=True)
    except MahiruError as error:
        if as_json:
            echo_json({"result": str(identifier), "verified": False, "reason": error.message})
        else:
            click.echo(f"{identifier} does NOT verify: {error.message}", err=True)
        sys.exit(1)
    if as_json:
        approvals = [a.statement.to_dict() for e in chain.releases for a in e.approvals]
        echo_json(
            {
                "result": str(identifier),
                "verified": True,
                "receipts": lines,
                "approvals": approvals,
            }
        )
        return
    approved = sum(len(e.approvals) for e in chain.releases)
    summary = f"{identifier} verifies: {len(chain.receipts)} receipts"
    if chain.releases:  # a chain without reviewed releases reads as it always did
        summary += f", {len(chain.releases)} reviewed release(s), {approved} approval(s)"
    click.echo(summary)
    for line in lines:
        click.echo(f"  {line}")


def _verify_crate(location: Path, registry_file: Path, as_json: bool) -> None:
    """`verify_command` for a crate: its chains and every file against them."""
    from mahiru.crate_archives import CrateFiles
    from mahiru.model.crates.checks import check_crate
    from mahiru.model.release_checks import verify_result
    from mahiru.pki.signatures import SiteSignatures

    registry = _load(registry_file)
    certificates = _certificates(registry, registry_file)
    check = SiteSignatures(lambda site: certificates.get(str(site)))
    trust = _trust(registry, registry_file)
    with CrateFiles(location) as files:
        try:
            lines = check_crate(
                files.metadata(),
                files.digest,
                files.document,
                lambda result, digest, chain: verify_result(
                    result, digest, chain, check, trust, released=True
                ),
                files.names(),
            )
        except MahiruError as error:
            if as_json:
                echo_json({"crate": str(location), "verified": False, "reason": error.message})
            else:
                click.echo(f"{location} does NOT verify: {error.message}", err=True)
            sys.exit(1)
    if as_json:
        echo_json({"crate": str(location), "verified": True, "checked": lines})
        return
    click.echo(f"{location} verifies: {len(lines)} checks")
    for line in lines:
        click.echo(f"  {line}")
