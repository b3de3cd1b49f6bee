"""`mahiru jobs crate`: a job as a Workflow Run RO-Crate, written to a zip (docs/crates.md)."""

from __future__ import annotations

from pathlib import Path

import click

from mahiru.cli.connection import echo_json, jobs_client, site_options
from mahiru.cli.errors import handle_errors


@click.command("crate")
@click.argument("job_id")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="The zip file to write (replaced if it exists).",
)
@site_options()
@handle_errors
def crate_command(
    job_id: str, out: Path, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Write a job's RO-Crate (Provenance Run Crate) to OUT: the workflow, each step's run
    (where, when, with which image, on what), the signed receipts, the PROV document, and
    the outputs your party may use. Check it offline with `mahiru results verify OUT`.

    \b
    Example:
      mahiru jobs crate 3f2a --out job.zip
    """
    from mahiru.cli.jobs import job_id_of

    with jobs_client(site_url, cert, tls_key, ca) as client:
        job_id = job_id_of(client, job_id)
        size = client.download_crate(job_id, out)
    if as_json:
        echo_json({"job_id": job_id, "crate": str(out), "size": size})
        return
    click.echo(f"{out}: the crate of job {job_id} ({size} bytes)")
