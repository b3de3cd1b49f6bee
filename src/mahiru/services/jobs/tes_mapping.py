"""GA4GH TES 1.1 tasks as Mahiru jobs, and jobs as tasks: the mapping, with no I/O.

A task has one executor, which is one step: its `image` names a compute asset,
and what the step runs is what that asset declares (its metadata's `command`,
`env`, `workdir`), never what the task says: the policy vouches for an asset's
behaviour, not for arbitrary commands. A task's `command`, `env`, `workdir`
and `stdin` are accepted only where they say what the asset already declares.

Several executors are refused: TES executors run one after another on one
shared file system, reading each other's files where they left them, while a
Mahiru step reads only its named inputs and writes only its named outputs,
and each step may be placed at a different site. A chain would need names for
the files passed between executors, which a task cannot give (its outputs
belong to the task, not to an executor). docs/tes.md says more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset
from mahiru.model.identifiers import AssetId, PartyId, ResultId, parse_identifier
from mahiru.model.workflow import Job, StepOutputRef, Workflow, WorkflowStep
from mahiru.runtime.limits import StepLimits

T = TypeVar("T")

#: The name of a task's one step in the job it becomes.
STEP = "executor"
INPUTS_DIR = "/mahiru/inputs/"
OUTPUTS_DIR = "/mahiru/outputs/"
GB = 1_000_000_000

_TASK_FIELDS = frozenset(
    {"id", "state", "name", "description", "inputs", "outputs", "resources", "executors",
     "volumes", "tags", "logs", "creation_time"}
)  # fmt: skip
_EXECUTOR_FIELDS = frozenset(
    {"image", "command", "workdir", "stdin", "stdout", "stderr", "env", "ignore_error"}
)
_INPUT_FIELDS = frozenset({"name", "description", "url", "path", "type", "content", "streamable"})
_OUTPUT_FIELDS = frozenset({"name", "description", "url", "path", "path_prefix", "type"})
_RESOURCE_FIELDS = frozenset(
    {"cpu_cores", "preemptible", "ram_gb", "disk_gb", "zones", "backend_parameters",
     "backend_parameters_strict"}
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9_-]+")

_TEXT: dict[str, Any] = {"type": "string"}
_LIST: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
#: The JSON Schema of a task body: the fields of TES 1.1 `tesTask`, which `parse_task`
#: checks further (read-only fields such as `id`, `state` and `logs` are ignored).
TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _TEXT,
        "state": _TEXT,
        "name": _TEXT,
        "description": _TEXT,
        "inputs": _LIST,
        "outputs": _LIST,
        "resources": {"type": "object"},
        "executors": _LIST,
        "volumes": {"type": "array", "items": _TEXT},
        "tags": {"type": "object", "additionalProperties": _TEXT},
        "logs": _LIST,
        "creation_time": _TEXT,
    },
    "required": ["executors"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a compute asset declares it runs: command, environment, working folder."""

    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None

    @classmethod
    def of(cls, asset: Asset) -> Behaviour:
        """The behaviour `asset`'s metadata declares (`command`, `env`, `workdir`)."""
        metadata = asset.metadata
        command = metadata.get("command")
        env = metadata.get("env")
        workdir = metadata.get("workdir")
        return cls(
            tuple(str(part) for part in command) if isinstance(command, list) else (),
            {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
            workdir if isinstance(workdir, str) else None,
        )


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task as parsed: the job it is, and what it asked for besides."""

    job: Job
    executor: Mapping[str, Any]
    resources: Mapping[str, Any]
    name: str | None
    description: str | None
    tags: Mapping[str, str]
    #: Each asset or result id the task names, with the field it is in, in order.
    named: tuple[tuple[str, str], ...] = ()

    @property
    def compute_asset(self) -> AssetId:
        """The compute asset its executor names."""
        return self.job.workflow.steps[STEP].compute_asset

    def kept(self) -> dict[str, Any]:
        """What is kept to show the task back: its executor and resources as sent."""
        return {"executors": [dict(self.executor)], "resources": dict(self.resources)}


def _object(value: object, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object", {"field": where})
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidInput(
            f"{where} has unknown fields: {', '.join(unknown)}", {"field": f"{where}.{unknown[0]}"}
        )
    return value


def _text(d: Mapping[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{where}.{key} must be text", {"field": f"{where}.{key}"})
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list", {"field": where})
    return value


def _refuse(where: str, why: str) -> InvalidInput:
    return InvalidInput(f"{where}: {why}", {"field": where})


def _parsed(parse: Callable[[str], T], text: object, where: str, what: str) -> T:
    """`parse(text)`, or InvalidInput naming `where` and what it must be."""
    if not isinstance(text, str):
        raise _refuse(where, f"must be {what}")
    try:
        return parse(text)
    except InvalidInput as error:
        raise _refuse(where, f"must be {what}: {error.message}") from None


def _input_id(text: str) -> AssetId | ResultId:
    value = parse_identifier(text, ("asset", "result"))
    assert isinstance(value, AssetId | ResultId)
    return value


def _named_path(path: object, folder: str, where: str) -> str:
    """The name in `<folder><name>`; InvalidInput naming `where` otherwise."""
    if not isinstance(path, str) or not path.startswith(folder):
        raise _refuse(where, f"must be {folder}<name>, got {path!r}")
    name = path.removeprefix(folder).rstrip("/")
    if not _NAME.fullmatch(name):
        raise _refuse(where, f"the name in {path!r} may use letters, digits, '_' and '-' only")
    return name


def _directory(d: Mapping[str, Any], where: str) -> None:
    kind = d.get("type")
    if kind is not None and kind != "DIRECTORY":
        raise _refuse(f"{where}.type", "must be DIRECTORY: a step's inputs and outputs are folders")


def parse_task(body: object, submitter: PartyId) -> TaskRequest:
    """The job a task body asks for, submitted by `submitter`; InvalidInput naming the
    field that does not fit the mapping."""
    task = _object(body, "task", _TASK_FIELDS)
    executors = _list(task.get("executors"), "executors")
    if not executors:
        raise _refuse("executors", "a task needs one executor")
    if len(executors) > 1:
        raise _refuse(
            "executors",
            "a task runs one executor here: TES executors share one file system, while a"
            " Mahiru step reads only its named inputs and may run at another site than the"
            " next; submit a chain as a workflow (`mahiru jobs submit`)",
        )
    if _list(task.get("volumes"), "volumes"):
        raise _refuse("volumes", "steps share no volumes: name inputs and outputs instead")
    executor = _object(executors[0], "executors[0]", _EXECUTOR_FIELDS)
    image = executor.get("image")
    try:
        compute = AssetId.parse(image) if isinstance(image, str) else None
    except InvalidInput as error:
        raise _refuse(
            "executors[0].image", f"must be a compute asset id: {error.message}"
        ) from None
    if compute is None:
        raise _refuse("executors[0].image", "must be a compute asset id")
    for key in ("stdout", "stderr"):
        if executor.get(key) is not None:
            raise _refuse(f"executors[0].{key}", "is not supported: the step's log is kept")
    if executor.get("ignore_error"):
        raise _refuse("executors[0].ignore_error", "is not supported: a failed step fails")
    raw_inputs, raw_outputs = (
        _list(task.get("inputs"), "inputs"),
        _list(task.get("outputs"), "outputs"),
    )
    inputs = _inputs(raw_inputs)
    outputs = _outputs(raw_outputs)
    named = [("executors[0].image", str(compute))]
    named += [(f"inputs[{i}].url", str(item["url"])) for i, item in enumerate(raw_inputs)]
    named += [(f"outputs[{i}].url", str(item["url"])) for i, item in enumerate(raw_outputs)]
    step = WorkflowStep(STEP, compute, {name: name for name in inputs}, outputs)
    workflow = Workflow(list(inputs), {name: StepOutputRef(STEP, name) for name in outputs}, [step])
    tags = task.get("tags") or {}
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise _refuse("tags", "must map text to text")
    resources = _object(task.get("resources") or {}, "resources", _RESOURCE_FIELDS)
    return TaskRequest(
        job=Job(submitter, workflow, inputs),
        executor=executor,
        resources=resources,
        name=_text(task, "name", "task"),
        description=_text(task, "description", "task"),
        tags=tags,
        named=tuple(named),
    )


def _inputs(items: list[Any]) -> dict[str, AssetId | ResultId]:
    inputs: dict[str, AssetId | ResultId] = {}
    for index, item in enumerate(items):
        where = f"inputs[{index}]"
        d = _object(item, where, _INPUT_FIELDS)
        if d.get("content") is not None:
            raise _refuse(f"{where}.content", "inline content is not an asset: name one by url")
        name = _named_path(d.get("path"), INPUTS_DIR, f"{where}.path")
        _directory(d, where)
        try:
            value = parse_identifier(d.get("url"), ("asset", "result"))
        except InvalidInput as error:
            raise _refuse(
                f"{where}.url", f"must be an asset or result id: {error.message}"
            ) from None
        assert isinstance(value, AssetId | ResultId)
        if name in inputs:
            raise _refuse(f"{where}.path", f"input {name!r} is named twice")
        inputs[name] = value
    return inputs


def _outputs(items: list[Any]) -> dict[str, AssetId | None]:
    outputs: dict[str, AssetId | None] = {}
    for index, item in enumerate(items):
        where = f"outputs[{index}]"
        d = _object(item, where, _OUTPUT_FIELDS)
        if d.get("path_prefix") is not None:
            raise _refuse(f"{where}.path_prefix", "is not supported: an output is a folder")
        name = _named_path(d.get("path"), OUTPUTS_DIR, f"{where}.path")
        _directory(d, where)
        try:
            base = AssetId.parse(d.get("url"))  # type: ignore[arg-type]
        except InvalidInput as error:
            raise _refuse(
                f"{where}.url", f"must be an output base asset id: {error.message}"
            ) from None
        if name in outputs:
            raise _refuse(f"{where}.path", f"output {name!r} is named twice")
        outputs[name] = base
    return outputs


def check_behaviour(executor: Mapping[str, Any], declared: Behaviour) -> None:
    """InvalidInput naming the executor field that asks for other than `declared`."""
    where = "executors[0]"
    command = executor.get("command") or []
    if command and tuple(command) != declared.command:
        own = " ".join(declared.command) if declared.command else "(none declared)"
        raise _refuse(
            f"{where}.command",
            f"must be empty or the asset's own command ({own}): the policy vouches for what"
            " an asset runs, not for other commands",
        )
    env = executor.get("env") or {}
    if not isinstance(env, dict):
        raise _refuse(f"{where}.env", "must map names to values")
    for key, value in sorted(env.items()):
        if declared.env.get(key) != value:
            raise _refuse(f"{where}.env", f"{key}={value!r} is not what the asset declares")
    workdir = executor.get("workdir")
    if workdir is not None and workdir != declared.workdir:
        raise _refuse(f"{where}.workdir", f"{workdir!r} is not the asset's working folder")
    if executor.get("stdin") is not None:
        raise _refuse(f"{where}.stdin", "is not supported: a step reads its named inputs")


def check_resources(resources: Mapping[str, Any], limits: StepLimits) -> None:
    """InvalidInput naming the first resource asked for above this site's step limits
    (refused, never lowered)."""
    over: list[str] = []
    cpus = resources.get("cpu_cores")
    if cpus is not None and (not isinstance(cpus, int | float) or cpus > limits.cpus):
        over.append(f"cpu_cores {cpus!r} (at most {limits.cpus:g})")
    ram = resources.get("ram_gb")
    if ram is not None and (not isinstance(ram, int | float) or ram * GB > limits.memory_bytes):
        over.append(f"ram_gb {ram!r} (at most {limits.memory_bytes / GB:g})")
    disk = resources.get("disk_gb")
    if disk is not None and (
        not isinstance(disk, int | float) or disk * GB > limits.max_output_bytes
    ):
        over.append(f"disk_gb {disk!r} (at most {limits.max_output_bytes / GB:g} of output)")
    if over:
        field_name = over[0].split(" ", 1)[0]
        raise InvalidInput(
            "resources above this site's step limits: " + "; ".join(over),
            {"field": f"resources.{field_name}", "over": over},
        )
    if resources.get("zones"):
        raise _refuse("resources.zones", "the policy chooses where a step runs")
    if resources.get("backend_parameters") and resources.get("backend_parameters_strict"):
        raise _refuse("resources.backend_parameters", "no backend parameters are supported")


def executors_of(job: Job, kept: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The task's executors as sent (kept), or its step's compute asset with no command."""
    sent = kept.get("executors")
    if isinstance(sent, list) and sent:
        return [{"command": [], **executor} for executor in sent]
    return [{"image": str(s.compute_asset), "command": []} for s in job.workflow.steps.values()]


def inputs_of(job: Job) -> list[dict[str, Any]]:
    """The task's inputs: each workflow input at `/mahiru/inputs/<name>`."""
    return [
        {"name": name, "url": str(value), "path": INPUTS_DIR + name, "type": "DIRECTORY"}
        for name, value in job.inputs.items()
    ]


def outputs_of(job: Job) -> list[dict[str, Any]]:
    """The task's outputs: each workflow output at `/mahiru/outputs/<name>`, with its base."""
    listed: list[dict[str, Any]] = []
    for name, ref in job.workflow.outputs.items():
        base = job.workflow.steps[ref.step].outputs[ref.output]
        output: dict[str, Any] = {"name": name, "path": OUTPUTS_DIR + name, "type": "DIRECTORY"}
        output["url"] = str(base) if base is not None else ""
        listed.append(output)
    return listed


def tags_match(tags: Mapping[str, str], keys: Sequence[str], values: Sequence[str]) -> bool:
    """Whether `tags` match the TES filter: each key present, with its value where one
    is given and not empty."""
    for index, key in enumerate(keys):
        if key not in tags:
            return False
        wanted = values[index] if index < len(values) else ""
        if wanted and tags[key] != wanted:
            return False
    return True
