"""A site's `runner` setting: docker by default, slurm with its settings, checked with clear
errors, and the composition root picks the runner it names. The Slurm job of a step:
its options carry the step's limits and labels, its container the docker runner's
isolation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.fake_runtime import FakeRuntime, Programs

from mahiru.bootstrap.jobs import step_environment
from mahiru.config import DockerRunnerConfig, SiteConfig, SlurmRunnerConfig, load_config
from mahiru.errors import InvalidInput, Unavailable
from mahiru.runtime.limits import MIB, StepLimits
from mahiru.runtime.slurm_commands import SlurmCommands, refusal
from mahiru.runtime.slurm_runner import SlurmRunner
from mahiru.runtime.slurm_script import (
    StepJob,
    comment,
    container_arguments,
    job_options,
    job_script,
    labels_of,
)

SITE_YAML = (
    "site_id: site:p.example.org:s\nowner: party:p.example.org:p\ntls: {network_ca: ca.crt}\n"
    "user_ca: u.crt\nregistry_url: https://r\ndatabase_url: sqlite:///s.db\ndata_dir: data\n"
)


def _load(tmp_path: Path, runner: str = "") -> SiteConfig:
    path = tmp_path / "site.yaml"
    path.write_text(SITE_YAML + runner)
    return load_config(SiteConfig, path, environ={})


def test_the_runner_is_docker_unless_the_site_says_otherwise(tmp_path: Path) -> None:
    """Without a runner section, steps run on the site's container engine, in its data."""
    config = _load(tmp_path)
    assert config.runner == DockerRunnerConfig()
    engine = FakeRuntime(Programs())

    environment = step_environment(config, engine)

    assert environment.runner is engine
    assert environment.work_dir == tmp_path / "data" / "work"


def test_a_slurm_runner_has_its_settings_and_a_shared_work_folder(tmp_path: Path) -> None:
    """`runner: {kind: slurm, ...}` is read with its shared folder resolved like every path,
    and the site's steps then run as Slurm jobs, their files in that folder."""
    config = _load(tmp_path, "runner: {kind: slurm, partition: batch, shared_dir: shared}\n")
    assert config.runner == SlurmRunnerConfig(
        kind="slurm", partition="batch", shared_dir=tmp_path / "shared"
    )

    environment = step_environment(config, FakeRuntime(Programs()))

    assert isinstance(environment.runner, SlurmRunner)
    assert environment.work_dir == tmp_path / "shared" / "work"


@pytest.mark.parametrize(
    ("runner", "message"),
    [
        ("runner: {kind: kubernetes}", "runner: Input tag 'kubernetes'"),
        ("runner: {partition: batch}", "runner: Value error, say which runner: kind: docker"),
        ("runner: {kind: slurm, shared_dir: /s}", "runner.slurm.partition: Field required"),
        ("runner: {kind: slurm, partition: batch}", "runner.slurm.shared_dir: Field required"),
        (
            "runner: {kind: slurm, partition: 'a b', shared_dir: /s}",
            "runner.slurm.partition: Value error, 'a b' is not a Slurm name",
        ),
        (
            "runner: {kind: slurm, partition: b, shared_dir: /s, engine: lxc}",
            "runner.slurm.engine: Input should be 'docker' or 'podman'",
        ),
        ("runner: {kind: docker, partition: b}", "runner.docker.partition: Extra inputs"),
    ],
)
def test_a_bad_runner_section_is_refused_naming_the_field(
    tmp_path: Path, runner: str, message: str
) -> None:
    """Each mistake in the runner section is an InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as raised:
        _load(tmp_path, runner + "\n")
    assert message in raised.value.message


LIMITS = StepLimits(cpus=1.5, memory_bytes=64 * MIB, timeout_seconds=90, max_output_bytes=MIB)


def _job(tmp_path: Path) -> StepJob:
    return StepJob(
        name="mahiru-step-0123456789ab",
        image="sha256:abc",
        folder=tmp_path / "steps" / "mahiru-step-0123456789ab",
        limits=LIMITS,
        user="65534:65534",
        mounts={tmp_path / "in": ("/mahiru/inputs/input0", True), tmp_path / "out": ("/o", False)},
        labels={"mahiru.site": "site:p.example.org:s", "mahiru.job": "j1"},
        environment={"MAHIRU_LIVE_X_TOKEN": "secret"},
    )


def test_a_step_job_asks_slurm_for_the_steps_limits_and_carries_its_labels(
    tmp_path: Path,
) -> None:
    """CPUs rounded up, the container's memory plus the script's, the time limit in whole
    minutes plus a margin, and the labels in the comment, read back as they were."""
    job = _job(tmp_path)
    options = job_options(job, partition="batch", account="acct")

    assert "--cpus-per-task=2" in options
    assert f"--mem={64 + 256}M" in options
    assert "--time=4" in options
    assert "--partition=batch" in options and "--account=acct" in options
    assert "--export=ALL" in options  # of sbatch's environment, which is the site's none
    assert labels_of(comment(job.labels)) == {**job.labels, "mahiru.role": "step"}
    assert labels_of("not a step") is None
    assert labels_of("mahiru.job=j1") is None  # no role: not a step's job


def test_a_step_jobs_container_is_isolated_and_bounded_like_the_docker_runners(
    tmp_path: Path,
) -> None:
    """No network, read-only root and inputs, no capabilities or new privileges, the
    step's user, memory without swap, CPUs, processes; the environment goes in a file."""
    arguments = container_arguments(_job(tmp_path))

    for expected in (
        "--network=none",
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--user=65534:65534",
        f"--memory={64 * MIB}",
        f"--memory-swap={64 * MIB}",
        "--cpus=1.5",
        "--pids-limit=256",
        "--pull=never",
        f"--mount=type=bind,source={tmp_path / 'in'},target=/mahiru/inputs/input0,readonly",
        f"--mount=type=bind,source={tmp_path / 'out'},target=/o",
        "--label=mahiru.role=step",
    ):
        assert expected in arguments
    script = job_script(_job(tmp_path), "docker")
    assert "secret" not in script
    assert "trap cancelled TERM INT" in script


def test_a_step_job_is_started_with_none_of_the_sites_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """srun (found on the site's PATH) runs with only the jobs' command path and the
    cluster's configuration, so a job it starts with `--export=ALL` gets nothing else of
    the site's (no secret); what srun says goes to the output file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(f'#!/bin/sh\nenv > {tmp_path / "env"}\necho "srun: $*"\nexit 3\n')
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("MAHIRU_SECRET", "hush")

    process = SlurmCommands(tmp_path / "slurm.conf").start(
        tmp_path / "job.sh", ["--export=ALL"], tmp_path / "srun.out"
    )

    assert process.wait(30) == 3
    environment = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line
    )
    assert environment.pop("SLURM_CONF") == str(tmp_path / "slurm.conf")
    assert "/usr/bin" in environment.pop("PATH").split(":")
    assert set(environment) <= {"PWD", "SHLVL", "_"}  # what the shell itself sets
    assert (tmp_path / "srun.out").read_text() == f"srun: --export=ALL {tmp_path / 'job.sh'}\n"


def test_what_srun_says_when_slurm_refuses_a_job_is_an_input_error_else_unavailable() -> None:
    """An unknown partition or account cannot be waited out: the step fails with Slurm's
    words. A cluster that cannot be reached may answer later."""
    refused = refusal("srun: error: Unable to allocate resources: Invalid partition name specified")
    unreachable = refusal(
        "srun: error: Unable to allocate resources: Unable to contact slurm controller"
    )

    assert isinstance(refused, InvalidInput) and "Invalid partition" in str(refused)
    assert isinstance(unreachable, Unavailable)


def test_labels_that_would_break_the_job_comment_are_refused(tmp_path: Path) -> None:
    """A label holding the comment's separators cannot be carried, so it is refused."""
    with pytest.raises(InvalidInput):
        comment({"mahiru.job": "a;b"})


def test_the_documented_runner_section_is_a_valid_one(tmp_path: Path) -> None:
    """The `runner` section docs/slurm.md gives (its one YAML block) is read as it says."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "slurm.md"
    (block,) = re.findall(r"```yaml\n(.*?)```", docs.read_text(), re.S)

    config = _load(tmp_path, block)

    assert config.runner == SlurmRunnerConfig(
        kind="slurm",
        partition="mahiru",
        shared_dir=Path("/shared/mahiru/site1"),
        account="research",
        slurm_conf=Path("/etc/slurm/slurm.conf"),
    )
