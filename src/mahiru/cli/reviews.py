"""`mahiru reviews`: the review queue of one's own site, for its reviewers.

Every command talks to the site's internal API over mutual TLS with a user certificate
of the reviewer (or admin) role (`mahiru certs user --role reviewer`); a plain user is
refused (exit 3). Review ids may be given by a unique prefix of at least 4 characters.
Deciding a review that is decided already, or approving over a failed check without
--override, exits with 1 and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mahiru.cli.connection import CONNECTION_HELP, echo_json, reviews_client, site_options
from mahiru.cli.errors import handle_errors
from mahiru.model.review_states import ReviewState

# The rest of the model comes with the client, when a command runs: `--help` needs neither.
if TYPE_CHECKING:
    from mahiru.model.reviews import Review

_STATES = click.Choice([state.value for state in ReviewState])
_OUT = click.Path(file_okay=False, path_type=Path)


def _line(review: Review) -> str:
    failed = review.failed_checks
    checks = f"  failed: {', '.join(failed)}" if failed else ""
    return (
        f"{review.review_id}  {review.state.value:8}  {review.result}  to"
        f" {review.receiving_party}{checks}"
    )


def _describe(review: Review, files: list[dict[str, object]] | None) -> list[str]:
    lines = [
        f"review {review.review_id}: {review.state.value}",
        f"  result:     {review.result} (sha256:{review.digest})",
        f"  release to: {review.receiving_party}, for job {review.job_id}",
        f"  rule:       {review.rule_id}, reviewer {review.reviewer}",
        f"  requested:  {review.requested_at.isoformat()}",
    ]
    lines.append("  checks:" if review.checks else "  checks:     none")
    for check in review.checks:
        mark = "passed" if check["passed"] else "FAILED"
        detail = f": {check['detail']}" if check["detail"] else ""
        lines.append(f"    {check['check']}: {mark}{detail}")
    if review.state.decided:
        override = " (override of failed checks)" if review.override else ""
        assert review.decided_at is not None  # a decided review says when
        lines.append(
            f"  decided:    {review.state.value} by {review.decided_by} at"
            f" {review.decided_at.isoformat()}{override}: {review.reason}"
        )
    if files is not None:
        lines.append("  files:" if files else "  files:      none")
        lines += [f"    /data/{f['path']}  ({f['size']} bytes)" for f in files]
    return lines


@click.group("reviews", epilog=CONNECTION_HELP)
def reviews_group() -> None:
    """List, inspect, approve and reject the reviews of results at your party's site."""


@reviews_group.command("list")
@click.option("--state", type=_STATES, help="Only reviews in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="At most this many."
)
@site_options()
@handle_errors
def list_command(
    state: str | None,
    limit: int,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """List the reviews your party is to decide, newest first.

    \b
    Example:
      mahiru reviews list --state pending
    """
    chosen = None if state is None else ReviewState(state)
    with reviews_client(site_url, cert, tls_key, ca) as client:
        reviews, total = client.list(chosen, limit=limit)
    if as_json:
        echo_json({"reviews": [r.to_dict() for r in reviews], "total": total})
        return
    if not reviews:
        click.echo("no reviews" + (f" {state}" if state else ""))
        return
    for review in reviews:
        click.echo(_line(review))
    if total > len(reviews):
        click.echo(f"... {total - len(reviews)} more (--limit shows more)", err=True)


@reviews_group.command("show")
@click.argument("review_id")
@click.option(
    "--out",
    "out_dir",
    type=_OUT,
    help="Download the result's files into this folder to inspect them (nothing is overwritten).",
)
@site_options()
@handle_errors
def show_command(
    review_id: str,
    out_dir: Path | None,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Show a review: the result, to whom, under which rule, the checks, its files and the
    decision once taken.

    REVIEW_ID may be a unique prefix of the id, here and in every `reviews` command.

    \b
    Example:
      mahiru reviews show 3f2a --out review-3f2a
    """
    with reviews_client(site_url, cert, tls_key, ca) as client:
        review = client.get(review_id)
        files = client.files(review.review_id)
        written = [] if out_dir is None else client.download(review.review_id, out_dir)
    if as_json:
        echo_json(
            {"review": review.to_dict(), "files": files, "written": [str(p) for p in written]}
        )
        return
    click.echo("\n".join(_describe(review, files)))
    if out_dir is not None:
        click.echo(f"wrote {len(written)} file(s) into {out_dir}", err=True)


@reviews_group.command("approve")
@click.argument("review_id")
@click.option("--reason", required=True, help="Why the result may go (kept in the audit log).")
@click.option(
    "--override",
    is_flag=True,
    help="Release the result although a check failed (the reason should say why).",
)
@site_options()
@handle_errors
def approve_command(
    review_id: str,
    reason: str,
    override: bool,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Approve a review: the result may be released to the party it is for.

    \b
    Example:
      mahiru reviews approve 3f2a --reason "aggregates of 50+ people only"
    """
    with reviews_client(site_url, cert, tls_key, ca) as client:
        review = client.approve(review_id, reason, override=override)
    _decided(review, as_json)


@reviews_group.command("reject")
@click.argument("review_id")
@click.option("--reason", required=True, help="Why the result stays here (kept in the audit log).")
@site_options()
@handle_errors
def reject_command(
    review_id: str,
    reason: str,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Reject a review: the result is never released to the party it is for.

    \b
    Example:
      mahiru reviews reject 3f2a --reason "column 3 names people"
    """
    with reviews_client(site_url, cert, tls_key, ca) as client:
        review = client.reject(review_id, reason)
    _decided(review, as_json)


def _decided(review: Review, as_json: bool) -> None:
    if as_json:
        echo_json(review.to_dict())
    else:
        click.echo(f"review {review.review_id}: {review.state.value} by {review.decided_by}")
