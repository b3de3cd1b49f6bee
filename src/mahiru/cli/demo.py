"""`mahiru demo`: the compute-to-data scenario on a local network, end to end."""

from __future__ import annotations

from pathlib import Path

import click

from mahiru.cli.errors import handle_errors


@click.command("demo")
@click.option(
    "--scenario",
    type=click.Choice(["compute_to_data", "data_access"]),
    default="compute_to_data",
    show_default=True,
    help="The scenario to run.",
)
@click.option("--keep", is_flag=True, help="Leave the services running and say how to reach them.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to put keys, configs, databases and logs, and leave them (default: a new"
    " temporary folder, removed at the end unless --keep or the run failed).",
)
@click.option(
    "--assets",
    "assets_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of asset archives to use or build (default: inside the workdir).",
)
@handle_errors
def demo_command(scenario: str, keep: bool, workdir: Path | None, assets_dir: Path | None) -> None:
    """Run a registry and two sites on loopback with TLS, and a job in real containers.

    Needs a running container engine and the base images (`make demo` sets up
    both). Prints the plan (the step runs at site2, where the data is), the
    timeline of each step, and the result, which must be [1, 34]. With
    `--scenario data_access` the step runs at site1 and reads the input live
    from site2, which never copies it to site1.
    """
    from mahiru.demo.runner import run_demo

    run_demo(workdir=workdir, assets_dir=assets_dir, keep=keep, scenario_name=scenario)
