"""`mahiru jobs`: submit, follow, cancel and fetch the results of jobs at one's own site.

Every command talks to the site's internal API over mutual TLS as a user of
the site's owner party (same connection options as `mahiru assets`). A job
denied by policy exits with 3 and the explanation; a job that failed or was
cancelled exits with 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mahiru.cli.connection import CONNECTION_HELP, echo_json, jobs_client, site_options
from mahiru.cli.errors import EXIT_FAILED, TimedOut, handle_errors
from mahiru.errors import Conflict, InvalidInput, NotFound

# The client and the model are imported where a command runs, not here: `--help` needs neither.
if TYPE_CHECKING:
    from mahiru.client.jobs import JobsClient, JobView

_JOB_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def _show(view: JobView, as_json: bool) -> None:
    if as_json:
        echo_json(view.to_json())
    else:
        from mahiru.cli.job_text import job_lines

        click.echo("\n".join(job_lines(view)))


def _exit_for(view: JobView) -> None:
    from mahiru.model.jobs import JobState

    if view.status.state in (JobState.FAILED, JobState.CANCELLED):
        sys.exit(EXIT_FAILED)


def _wait(client: JobsClient, job_id: str, timeout: float, as_json: bool) -> JobView:
    """Follow a job until it finishes, showing its progress on stderr (`ProgressLines`).

    A wait that ends by its timeout shows the job and raises TimedOut (exit
    5): the job itself goes on.
    """
    from mahiru.cli.job_progress import ProgressLines

    progress = None if as_json else ProgressLines()
    view = client.wait(job_id, timeout, progress)
    if not view.status.state.terminal:
        _show(view, as_json)
        raise TimedOut(
            f"job {job_id} did not finish within {timeout:g} s (it is"
            f" {view.status.state.value} and goes on); follow it with"
            f" `mahiru jobs wait {job_id}`",
            {"job_id": job_id, "state": view.status.state.value, "timeout": timeout},
        )
    return view


_TIMEOUT_HELP = "Seconds to wait before giving up (exit 5); the job goes on."
#: The shortest job id prefix the commands accept.
MIN_PREFIX = 4


def job_id_of(client: JobsClient, text: str) -> str:
    """The full id of the job `text` names: the id itself, or a unique prefix of one."""
    from mahiru.cli.prefixes import resolve_prefix

    text = text.strip().lower()
    if len(text) == 32:
        return text
    if not all(c in "0123456789abcdef" for c in text):
        raise InvalidInput(f"{text!r} is not a job id: job ids are hex digits")
    ids = (status.job_id for status in client.list())
    return resolve_prefix(
        text, ids, what="job id", minimum=MIN_PREFIX, hint="`mahiru jobs list` shows the ids"
    )


@click.group("jobs", epilog=CONNECTION_HELP)
def jobs_group() -> None:
    """Submit, follow, cancel and fetch the results of jobs at your party's site."""


@jobs_group.command("submit")
@click.argument("job_file", type=_JOB_FILE)
@click.option("--wait", is_flag=True, help="Wait until the job is finished.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: " + _TIMEOUT_HELP,
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id (for scripts).")
@site_options()
@handle_errors
def submit_command(
    job_file: Path,
    wait: bool,
    timeout: float,
    quiet: bool,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Submit the job in JOB_FILE (YAML); prints its id and plan (exit 3 if denied).

    With --wait, follows the job until it finishes: exit 0 if it succeeded,
    1 if it failed or was cancelled, 5 if --timeout passed first.

    \b
    Example:
      mahiru jobs submit job.yaml --wait --timeout 600
    """
    from mahiru.files import load_job

    job = load_job(job_file)
    with jobs_client(site_url, cert, tls_key, ca) as client:
        view = client.submit(job)
        if wait:
            job_id = view.status.job_id
            if not as_json and not quiet:
                click.echo(f"submitted job {job_id}; waiting up to {timeout:g} s", err=True)
            view = _wait(client, job_id, timeout, as_json or quiet)
    if quiet:
        click.echo(view.status.job_id)
    else:
        _show(view, as_json)
    if wait:
        _exit_for(view)


@jobs_group.command("wait")
@click.argument("job_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help=_TIMEOUT_HELP,
)
@site_options()
@handle_errors
def wait_command(
    job_id: str, timeout: float, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Wait until a job finishes: exit 0 if it succeeded, 1 if it failed or was cancelled,
    5 if --timeout passed first.

    \b
    Example:
      mahiru jobs wait 3f2a --timeout 600 && mahiru jobs result 3f2a --output-dir out
    """
    with jobs_client(site_url, cert, tls_key, ca) as client:
        view = _wait(client, job_id_of(client, job_id), timeout, as_json)
    _show(view, as_json)
    _exit_for(view)


@jobs_group.command("status")
@click.argument("job_id")
@site_options()
@handle_errors
def status_command(
    job_id: str, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Show a job: its state, plan and steps with their timestamps.

    JOB_ID may be a unique prefix of the id, here and in every `jobs` command.

    \b
    Example:
      mahiru jobs status 3f2a
    """
    with jobs_client(site_url, cert, tls_key, ca) as client:
        _show(client.status(job_id_of(client, job_id)), as_json)


@jobs_group.command("provenance")
@click.argument("job_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["prov-json", "dot"]),
    default="prov-json",
    show_default=True,
    help="W3C PROV-JSON, or a Graphviz graph (draw it with `dot -Tsvg`).",
)
@site_options()
@handle_errors
def provenance_command(
    job_id: str,
    output_format: str,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Print how a job made its results: inputs, compute assets, steps, sites and parties.

    \b
    Example:
      mahiru jobs provenance 3f2a --format dot | dot -Tsvg > provenance.svg
    """
    with jobs_client(site_url, cert, tls_key, ca) as client:
        document = client.provenance(job_id_of(client, job_id))
    if output_format == "dot":
        from mahiru.model.prov import to_dot

        click.echo(to_dot(document), nl=False)
    else:
        echo_json(document)


@jobs_group.command("list")
@site_options()
@handle_errors
def list_command(site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool) -> None:
    """List your party's jobs at the site, oldest first.

    \b
    Example:
      mahiru jobs list --json
    """
    with jobs_client(site_url, cert, tls_key, ca) as client:
        jobs = client.list()
    if as_json:
        echo_json({"jobs": [status.to_dict() for status in jobs]})
        return
    from mahiru.cli.job_text import job_summary

    if not jobs:
        click.echo("no jobs")
    for status in jobs:
        click.echo(job_summary(status))


@jobs_group.command("cancel")
@click.argument("job_id")
@site_options()
@handle_errors
def cancel_command(
    job_id: str, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Cancel a job that has not finished (its running steps are stopped).

    \b
    Example:
      mahiru jobs cancel 3f2a
    """
    with jobs_client(site_url, cert, tls_key, ca) as client:
        _show(client.cancel(job_id_of(client, job_id)), as_json)


@jobs_group.command("result")
@click.argument("job_id")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write the /data files (one folder per workflow output).",
)
@click.option("--output", "names", multiple=True, help="Only this workflow output (repeatable).")
@site_options()
@handle_errors
def result_command(
    job_id: str,
    output_dir: Path,
    names: tuple[str, ...],
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Write the /data files of a succeeded job's outputs to OUTPUT_DIR/<output>/.

    \b
    Example:
      mahiru jobs result 3f2a --output-dir result
    """
    from mahiru.model.jobs import JobState

    written: dict[str, list[str]] = {}
    with jobs_client(site_url, cert, tls_key, ca) as client:
        job_id = job_id_of(client, job_id)
        status = client.status(job_id).status
        if status.state is not JobState.SUCCEEDED:
            reason = f" ({status.reason})" if status.reason else ""
            raise Conflict(
                f"job {job_id} is {status.state.value}{reason}: only a succeeded job has results",
                {"job_id": job_id, "state": status.state.value},
            )
        outputs = status.outputs()
        unknown = sorted(set(names) - set(outputs))
        if unknown:
            raise InvalidInput(
                f"job {job_id} has no output {', '.join(map(repr, unknown))};"
                f" its outputs: {', '.join(sorted(outputs))}",
                {"outputs": sorted(outputs)},
            )
        for name in names or tuple(outputs):
            files = client.download_output(job_id, name, output_dir / name)
            written[name] = [str(path) for path in files]
    if as_json:
        echo_json({"job_id": job_id, "files": written})
        return
    for name, paths in written.items():
        click.echo(f"{name}:")
        for path in paths:
            click.echo(f"  {path}")


@jobs_group.command("logs")
@click.argument("job_id")
@click.argument("step", required=False)
@click.option(
    "-f", "--follow", is_flag=True, help="Print each step's log as it is written, until it ends."
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1, max=3600),
    default=3600,
    show_default=True,
    help="With --follow: stop following a step after this long.",
)
@site_options()
@handle_errors
def logs_command(
    job_id: str,
    step: str | None,
    follow: bool,
    seconds: float,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Show the log of each step of a job (or of STEP only), or follow it as it is written.

    A step's log is shown only where your party may use the step's outputs,
    as with results; otherwise it says so.

    \b
    Example:
      mahiru jobs logs 3f2a compute --follow
    """
    from mahiru.cli import step_logs  # the client and job model: only when it runs

    with jobs_client(site_url, cert, tls_key, ca) as client:
        view = client.status(job_id_of(client, job_id))
        steps = [s for s in view.steps if step is None or s.step == step]
        if step is not None and not steps:
            known = ", ".join(s.step for s in view.steps)
            raise NotFound(f"job {view.status.job_id} has no step {step!r} (steps: {known})")
        if follow:
            step_logs.follow(client, view.status.job_id, steps, seconds)
            return
    if as_json:
        echo_json({"job_id": view.status.job_id, "logs": {s.step: s.log_tail for s in steps}})
        return
    step_logs.show_kept(steps)


# In its own module, so this one stays one idea: following and fetching jobs.
from mahiru.cli.job_crates import crate_command  # noqa: E402 (it imports this module)

jobs_group.add_command(crate_command)
