"""The Slurm job of one step: the script that runs the step's container on a node, and the
options that give Slurm the step's limits.

A container started from a job is a child of the engine's daemon, not of the
job: Slurm's cgroup, its `--mem` and its signals do not reach it. So the
script gives the container the step's limits itself (the same isolation as
the docker runner: no network, read-only root and inputs, no capabilities, no
new privileges, an unprivileged user, CPU, memory, swap and process limits),
ends it at the step's time limit, removes it when Slurm signals the job
(cancel, Slurm's own time limit), and removes it when it has ended.

What the script leaves in the step's folder (on the shared file system):

- `job-id`: the Slurm job's id, written first;
- `log`: the container's output, streamed while it runs (capped);
- `start-error`: what the engine said when it refused to start the container;
- `status`: written once the container has ended (nothing of the step runs
  any more and its output is all in the log and the output folders): its exit
  code, whether the kernel killed it for memory, whether the time limit ended
  it (JSON). The script then removes the container and ends; the site need
  not wait for that (the job's end is what a cancel waits for).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import InvalidInput
from mahiru.runtime.limits import MIB, StepLimits
from mahiru.runtime.steps import INPUTS_DIR, LABEL_ROLE, LIVE_DIR, ROLE_STEP, check_io_name

#: The files of a step's folder.
LOG_FILE = "log"
START_ERROR_FILE = "start-error"
STATUS_FILE = "status"
ENV_FILE = "env"
JOB_ID_FILE = "job-id"
SCRIPT_FILE = "job.sh"
#: Written by the site when it cancels the step: Slurm drops a signal sent to a job whose
#: task has not started yet, so a script just starting looks for this file too.
CANCEL_FILE = "cancelled"
#: What `srun` itself says (a job queued, refused, cancelled).
SLURM_OUTPUT_FILE = "slurm.out"
#: The most of a step's output the log file keeps (the docker runner's engine keeps 10 MiB).
LOG_CAP_BYTES = 10 * MIB
#: Memory the job itself needs beyond the container's: the script and the engine's
#: command-line clients, which do live in the job's cgroup.
JOB_MEMORY_OVERHEAD_MIB = 256
#: Minutes Slurm's own time limit adds to the step's: the script ends the container on
#: time itself; Slurm's limit is the backstop should the script hang.
TIME_MARGIN_MINUTES = 2
#: The command search path of the job (it is given none of the site's environment).
JOB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class StepJob:
    """One step to run as a Slurm job: its container and where its files go."""

    name: str
    image: str
    folder: Path
    limits: StepLimits
    user: str
    #: Host path -> (container path, read-only).
    mounts: Mapping[Path, tuple[str, bool]]
    labels: Mapping[str, str]
    environment: Mapping[str, str]


def job_options(job: StepJob, *, partition: str, account: str | None) -> list[str]:
    """The `srun` options of the step's job: its name, its labels (as the comment, so
    that a restarted site finds it), its partition and the step's limits."""
    limits = job.limits
    minutes = math.ceil(limits.timeout_seconds / 60) + TIME_MARGIN_MINUTES
    options = [
        f"--job-name={job.name}",
        f"--comment={comment(job.labels)}",
        f"--partition={partition}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={max(1, math.ceil(limits.cpus))}",
        f"--mem={math.ceil(limits.memory_bytes / MIB) + JOB_MEMORY_OVERHEAD_MIB}M",
        f"--time={minutes}",
        f"--chdir={job.folder}",
        # The job gets srun's environment, and the runner gives srun none of the site's
        # (its secrets included; `SlurmCommands.start`). Not NONE: for a batch job, that
        # makes slurmd load the user's login environment (`su - user -c env`) first, 1-2 s.
        "--export=ALL",
    ]
    if account is not None:
        options.append(f"--account={account}")
    return options


def comment(labels: Mapping[str, str]) -> str:
    """The job comment that carries a step's labels: `k=v` pairs joined by ';'."""
    pairs = {**labels, LABEL_ROLE: ROLE_STEP}
    for key, value in pairs.items():
        if any(c in key + value for c in ";=\n") or not key:
            raise InvalidInput(f"step label {key}={value} cannot be a Slurm job comment")
    return ";".join(f"{key}={value}" for key, value in sorted(pairs.items()))


def labels_of(job_comment: str) -> dict[str, str] | None:
    """The labels a step's job comment carries; None if it is not a step's comment."""
    labels = {}
    for pair in job_comment.split(";"):
        key, equals, value = pair.partition("=")
        if not equals:
            return None
        labels[key] = value
    return labels if labels.get(LABEL_ROLE) == ROLE_STEP else None


def environment_file(job: StepJob) -> str:
    """The container's environment, one `NAME=value` a line (for `--env-file`)."""
    lines = []
    for key, value in {**job.environment, "HOME": "/tmp"}.items():
        if "\n" in value or "\n" in key or "=" in key or not key:
            raise InvalidInput(f"environment variable {key!r} cannot be passed to a step")
        lines.append(f"{key}={value}")
    return "".join(line + "\n" for line in lines)


def container_arguments(job: StepJob) -> list[str]:
    """The engine's `run` arguments (after `run`, before the image) for the step."""
    limits = job.limits
    arguments = [
        # Not --rm: with it the client returns only once the engine has removed the
        # container, 0.05-0.1 s after its end; the script removes it after the status.
        "--pull=never",
        f"--name={job.name}",
        f"--user={job.user}",
        "--network=none",
        "--read-only",
        f"--tmpfs=/tmp:rw,nosuid,nodev,size={limits.memory_bytes},mode=1777",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--memory={limits.memory_bytes}",
        f"--memory-swap={limits.memory_bytes}",
        f"--cpus={limits.cpus:g}",
        f"--pids-limit={limits.pids}",
        "--ipc=private",
        "--log-opt=max-size=10m",
        "--log-opt=max-file=1",
        f"--env-file={job.folder / ENV_FILE}",
    ]
    for key, value in sorted({**job.labels, LABEL_ROLE: ROLE_STEP}.items()):
        arguments.append(f"--label={key}={value}")
    for source, (target, read_only) in job.mounts.items():
        if "," in str(source) or "," in target:
            raise InvalidInput(f"a step cannot mount {source}: its path holds a ','")
        mount = f"type=bind,source={source},target={target}"
        arguments.append(f"--mount={mount},readonly" if read_only else f"--mount={mount}")
    return arguments


def job_script(job: StepJob, engine: str) -> str:
    """The script of the step's job (see the module's description)."""
    run = shlex.join([engine, "run", *container_arguments(job), job.image])
    seconds = max(1, math.ceil(job.limits.timeout_seconds))
    return _SCRIPT.format(
        path=shlex.quote(JOB_PATH),
        engine=shlex.quote(engine),
        name=shlex.quote(job.name),
        image=shlex.quote(job.image),
        folder=shlex.quote(str(job.folder)),
        run=run,
        seconds=seconds,
        log_cap=LOG_CAP_BYTES,
        log=LOG_FILE,
        job_id=JOB_ID_FILE,
        start_error=START_ERROR_FILE,
        status=STATUS_FILE,
        cancel=CANCEL_FILE,
    )


# One engine client runs the container in the foreground: it streams the container's
# output into the log (capped; the rest is drained so the container never blocks), waits
# for its end and exits with its exit code, which the subshell then prints. The shell
# waits for that line with `read`, whose time-out is the step's time limit, so a signal
# from Slurm runs the trap at once. Only a step that did not exit 0 costs one more client
# call: the engine's events say whether the kernel killed it for memory, and whether it
# started at all (125-127 are also the client's own codes). A container whose client
# said 0 has exited: its status is written first and the site, which watches for it,
# stores the outputs while the script removes the container. Any other code may be the
# client's own (killed, say) while the container runs on: that one is removed first.
# On a cancel, Slurm signals every process of the step, the client too. The trap removes
# the container, and claims its name once the client has gone, for a client killed while
# it asked for the container leaves the engine to create it a moment later.
# Bash's clock stands in for `date` (bash 4.2 and later): each process started is on the
# step's path.
_SCRIPT = """#!/bin/bash
# A Mahiru step, written by the site's Slurm runner.
set -u -o pipefail
export PATH={path}
ENGINE={engine}
NAME={name}
DIR={folder}
printf -v since '%(%s)T' -1
remove() {{
    "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 && return
    # The engine may have been removing it already: wait until it is gone.
    while "$ENGINE" container inspect "$NAME" >/dev/null 2>&1; do
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || sleep 0.1
    done
}}
finish() {{
    if [ "$1" = 0 ]; then
        mv "$DIR/{status}.partial" "$DIR/{status}"
        remove
    else
        remove
        mv "$DIR/{status}.partial" "$DIR/{status}"
    fi
    exit "$1"
}}
cancelled() {{
    # Slurm signals every process of the step: the container goes until its client has
    # ended (its code or the end of its output on fd 3; a bad fd: it never started).
    for ((tries = 0; tries < 300; tries++)); do
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1
        read -r -t 0.1 _ <&3
        [ $? -le 128 ] && break
    done
    # A client killed while it asked for the container leaves the engine to create it
    # after: a container of this name made here (the engine refuses a second) ends that.
    for ((tries = 0; tries < 100; tries++)); do
        "$ENGINE" create --pull=never --network=none --name "$NAME" {image} true \\
            >/dev/null 2>&1 && break
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || sleep 0.1
    done
    remove
    exit 143
}}
trap cancelled TERM INT
[ -e "$DIR/{cancel}" ] && cancelled
printf '%s\\n' "${{SLURM_JOB_ID:-}}" >"$DIR/{job_id}"
exec 3< <(
    {run} </dev/null 2>&1 | {{ stdbuf -o0 head -c {log_cap}; cat >/dev/null; }} >"$DIR/{log}"
    echo "$?"
)
timed_out=false
if ! read -r -t {seconds} code <&3; then
    timed_out=true
    "$ENGINE" kill "$NAME" >/dev/null 2>&1
    read -r code <&3
fi
oom=false
if [ "$code" != 0 ] && ! $timed_out; then
    events=$("$ENGINE" events --since "$since" --until "${{EPOCHREALTIME:-$(date +%s.%N)}}" \\
        --filter "container=$NAME" 2>/dev/null)
    case "$events" in *" container oom "*) oom=true ;; esac
    case "$code:$events" in
        12[5-7]:*" container start "*) ;;
        12[5-7]:*)
            cp "$DIR/{log}" "$DIR/{start_error}"
            printf '{{"start_error": true}}\\n' >"$DIR/{status}.partial"
            finish 125
            ;;
    esac
fi
printf '{{"exit_code": %s, "oom_killed": %s, "timed_out": %s}}\\n' \\
    "${{code:-null}}" "$oom" "$timed_out" >"$DIR/{status}.partial"
finish "${{code:-1}}"
"""


def step_mounts(
    shared: Path, inputs: Mapping[str, Path], live: Mapping[str, Path], output_dir: Path
) -> dict[Path, tuple[str, bool]]:
    """Input `i` read-only at `/mahiru/inputs/<i>`, live input `i`'s socket at
    `/mahiru/live/<i>.sock`; each, and the output folder, must be under `shared`, the
    folder the cluster's nodes share."""
    mounts: dict[Path, tuple[str, bool]] = {}
    for name, path in inputs.items():
        check_io_name("input", name)
        if not path.is_dir():
            raise InvalidInput(f"input {name}: {path} is not a directory")
        mounts[_shared(shared, path)] = (f"{INPUTS_DIR}/{name}", True)
    for name, socket_path in live.items():
        check_io_name("input", name)
        if not socket_path.is_socket():
            raise InvalidInput(f"live input {name}: {socket_path} is not a socket")
        mounts[_shared(shared, socket_path)] = (f"{LIVE_DIR}/{name}.sock", True)
    _shared(shared, output_dir)
    return mounts


def _shared(shared: Path, path: Path) -> Path:
    """`path`, resolved, if it is under `shared` (the nodes see nothing else)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(shared.resolve()):
        raise InvalidInput(
            f"{path} is not under the Slurm runner's shared folder {shared}:"
            " the nodes cannot see it"
        )
    return resolved
