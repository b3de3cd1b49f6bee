"""`mahiru audit`: read and verify a site's audit log.

The site writes a record for every policy decision it takes, every image it
sends or receives, every rule added, revoked or rejected, every job and step
state change and every refused caller, each chained to the one before by its
SHA-256. A record of a person's act (an upload, a rule added or revoked, a
job submitted or cancelled, a download) names them as `user=<name>@<party>`.
Admins read every record; other users the records of their own acts and about
the jobs they submitted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mahiru.cli.connection import CONNECTION_HELP, echo_json, site_client, site_options
from mahiru.cli.errors import handle_errors
from mahiru.model.audit import AuditKind

#: The most records `audit list --all` reads.
MAX_RECORDS = 100_000


@click.group("audit", epilog=CONNECTION_HELP)
def audit_group() -> None:
    """Read and verify the site's tamper-evident audit log."""


@audit_group.command("list")
@click.option("--job", help="Only records about this job id.")
@click.option("--asset", help="Only records about this asset or result id.")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in AuditKind]),
    help="Only records of this kind.",
)
@click.option("--since", metavar="TIME", help="Only records from TIME on (ISO 8601, with zone).")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    help="Records per page.",
)
@click.option("--before", type=click.IntRange(min=1), help="Start below this record number.")
@click.option("--all", "read_all", is_flag=True, help="Follow every page (newest first).")
@site_options()
@handle_errors
def list_command(
    job: str | None,
    asset: str | None,
    kind: str | None,
    since: str | None,
    limit: int,
    before: int | None,
    read_all: bool,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """List audit records, newest first (one page, or every page with --all)."""
    records: list[dict[str, Any]] = []
    with site_client(site_url, cert, tls_key, ca) as site:
        while True:
            page = site.audit_records(
                job=job, asset=asset, kind=kind, since=since, limit=limit, before=before
            )
            records.extend(page["records"])
            before = page["next"]
            if not read_all or before is None or len(records) >= MAX_RECORDS:
                break
    if as_json:
        echo_json({"records": records, "next": before})
        return
    if not records:
        click.echo("no audit records match")
        return
    for record in records:
        click.echo(_line(record))
    if before is not None:
        click.echo(f"(more: --before {before}, or --all)", err=True)


def _line(record: dict[str, Any]) -> str:
    about = " ".join(
        f"{key}={record[key]}"
        for key in ("user", "job", "step", "asset")
        if record.get(key) is not None
    )
    actor = record.get("actor") or "-"
    return (
        f"{record['seq']:>7}  {record['at'][:19]}  {record['kind']:<8}  {record['action']:<16}"
        f"  {record['outcome']:<10}  {actor}  {about}".rstrip()
    )


@audit_group.command("show")
@click.argument("seq", type=click.IntRange(min=1))
@site_options()
@handle_errors
def show_command(
    seq: int, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Show audit record SEQ in full, with its place in the chain."""
    with site_client(site_url, cert, tls_key, ca) as site:
        record = site.audit_record(seq)
    if as_json:
        echo_json(record)
        return
    keys = ("seq", "at", "kind", "action", "outcome", "actor", "user", "party", "job", "step")
    for key in (*keys, "asset"):
        if record.get(key) is not None:
            click.echo(f"{key + ':':<9} {record[key]}")
    details = record.get("details") or {}
    explanation = details.pop("explanation", None) if isinstance(details, dict) else None
    click.echo("details:  " + json.dumps(details, indent=2, sort_keys=True).replace("\n", "\n  "))
    if explanation:
        click.echo("explanation:")
        for line in str(explanation).splitlines():
            click.echo(f"  {line}")
    click.echo(f"prev:     {record['prev']}")
    click.echo(f"hash:     {record['hash']}")


@audit_group.command("verify")
@site_options()
@handle_errors
def verify_command(site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool) -> None:
    """Recompute the whole hash chain; exit 1 naming the first broken record, if any."""
    with site_client(site_url, cert, tls_key, ca) as site:
        check = site.verify_audit()
    if as_json:
        echo_json(check)
    elif check["intact"]:
        click.echo(
            f"the audit log is intact: {check['records']} records, newest hash {check['head_hash']}"
        )
    else:
        click.echo(
            f"the audit log is broken at record {check['broken_at']}: {check['problem']}",
            err=True,
        )
    if not check["intact"]:
        sys.exit(1)
