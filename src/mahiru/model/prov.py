"""A job's derivation as a W3C PROV document (PROV-JSON), and as a Graphviz graph.

Entities are the job's inputs, its compute and output base assets and the
results of its steps; activities are the steps (with their times); agents
are the sites that ran them, their owners, the submitting party and the person
of that party who submitted the job (`mahiru:user:<name>@<party>`, acting on
the party's behalf), when the job recorded them. Every
Mahiru id becomes a qualified name in the `mahiru` namespace (`urn:mahiru:`),
so `asset:p1.org:data:p1.org:site` is `mahiru:asset:p1.org:data:p1.org:site`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mahiru.model.identifiers import PartyId, ResultId, SiteId
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.workflow import StepOutputRef

#: The namespace every Mahiru id is qualified in.
NAMESPACE = "urn:mahiru:"

Document = dict[str, Any]


def _q(text: object) -> str:
    return f"mahiru:{text}"


def _time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


class _Builder:
    """Collects PROV records; relation ids are numbered in the order they are added."""

    def __init__(self) -> None:
        self.doc: Document = {"prefix": {"mahiru": NAMESPACE, "prov": "http://www.w3.org/ns/prov#"}}
        self._count = 0

    def node(self, kind: str, ident: str, **attributes: Any) -> None:
        section = self.doc.setdefault(kind, {})
        merged = {**section.get(ident, {}), **attributes}
        section[ident] = {key: value for key, value in merged.items() if value is not None}

    def relation(self, kind: str, **attributes: Any) -> None:
        self._count += 1
        section = self.doc.setdefault(kind, {})
        section[f"_:{kind}{self._count}"] = {
            key: value for key, value in attributes.items() if value is not None
        }


def job_provenance(
    status: JobStatus, steps: Iterable[StepStatus], owners: Mapping[SiteId, PartyId]
) -> Document:
    """The PROV-JSON document of how job `status` made (or is making) its results.

    `steps` are the job's step statuses (their results and times); `owners`
    maps the sites that ran them to their owner parties.
    """
    job, plan = status.job, status.plan
    by_step = {step.step: step for step in steps}
    start, end = _job_times(status, by_step.values())
    expected: Mapping[StepOutputRef, ResultId] = job.result_ids()
    b = _Builder()
    submitter = _q(job.submitter)
    b.node("agent", submitter, **{"prov:type": "prov:Organization", "prov:label": "submitter"})
    job_node = _q(f"job:{status.job_id}")
    b.node(
        "activity",
        job_node,
        **{
            "prov:type": "mahiru:Job",
            "prov:label": f"job {status.job_id} ({status.state.value})",
            "prov:startTime": _time(start),
            "prov:endTime": _time(end),
        },
    )
    b.relation("wasAssociatedWith", **{"prov:activity": job_node, "prov:agent": submitter})
    if status.submitted_by is not None:
        person = _q(f"user:{status.submitted_by}")
        b.node("agent", person, **{"prov:type": "prov:Person", "prov:label": "submitted by"})
        b.relation("wasAssociatedWith", **{"prov:activity": job_node, "prov:agent": person})
        b.relation("actedOnBehalfOf", **{"prov:delegate": person, "prov:responsible": submitter})
    for name, asset in job.inputs.items():
        b.node("entity", _q(asset), **{"prov:type": "mahiru:Input", "prov:label": name})
    for step_name in job.workflow.topological_order():
        definition = job.workflow.steps[step_name]
        state = by_step.get(step_name)
        activity = _q(f"step:{status.job_id}:{step_name}")
        b.node(
            "activity",
            activity,
            **{
                "prov:type": "mahiru:Step",
                "prov:label": step_name + (f" ({state.state.value})" if state else ""),
                "prov:startTime": _time(state.started_at if state else None),
                "prov:endTime": _time(state.finished_at if state else None),
            },
        )
        b.relation("wasInformedBy", **{"prov:informed": activity, "prov:informant": job_node})
        site = plan.assignments.get(step_name) if plan is not None else None
        if site is not None:
            site_node = _q(site)
            b.node("agent", site_node, **{"prov:type": "prov:SoftwareAgent", "prov:label": "site"})
            b.relation("wasAssociatedWith", **{"prov:activity": activity, "prov:agent": site_node})
            owner = owners.get(site)
            if owner is not None:
                owner_node = _q(owner)
                b.node("agent", owner_node, **{"prov:type": "prov:Organization"})
                b.relation(
                    "actedOnBehalfOf",
                    **{"prov:delegate": site_node, "prov:responsible": owner_node},
                )
        compute = _q(definition.compute_asset)
        b.node("entity", compute, **{"prov:type": "mahiru:Compute"})
        b.relation(
            "used", **{"prov:activity": activity, "prov:entity": compute, "prov:role": "compute"}
        )
        used: list[str] = []
        for input_name, source in definition.inputs.items():
            if isinstance(source, StepOutputRef):
                entity = _q(_result(by_step, expected, source))
            else:
                entity = _q(job.inputs[source])
            used.append(entity)
            b.relation(
                "used",
                **{"prov:activity": activity, "prov:entity": entity, "prov:role": input_name},
            )
        for output, base in definition.outputs.items():
            ref = StepOutputRef(step_name, output)
            result = _q(_result(by_step, expected, ref))
            b.node("entity", result, **{"prov:type": "mahiru:Result", "prov:label": str(ref)})
            b.relation(
                "wasGeneratedBy",
                **{"prov:entity": result, "prov:activity": activity, "prov:role": output},
            )
            b.relation("wasAttributedTo", **{"prov:entity": result, "prov:agent": submitter})
            if base is not None:
                b.node("entity", _q(base), **{"prov:type": "mahiru:OutputBase"})
                used.append(_q(base))
            for source_entity in [compute, *used]:
                b.relation(
                    "wasDerivedFrom",
                    **{"prov:generatedEntity": result, "prov:usedEntity": source_entity},
                )
    for name, ref in job.workflow.outputs.items():
        b.node("entity", _q(_result(by_step, expected, ref)), **{"mahiru:workflowOutput": name})
    return b.doc


def _job_times(status: JobStatus, steps: Iterable[StepStatus]) -> tuple[datetime, datetime | None]:
    """When the job's activity started and ended, spanning its steps' times.

    The submitter's site marks a job started when it learns that a step
    started, which for a step run elsewhere is later than the step's own
    start (and the sites' clocks differ a little): the job starts no later
    than its first step, and a finished job ends no earlier than its last.
    """
    steps = list(steps)
    start = min(
        [status.started_at or status.submitted_at]
        + [s.started_at for s in steps if s.started_at is not None]
    )
    end = status.finished_at
    if end is not None:
        end = max([end] + [s.finished_at for s in steps if s.finished_at is not None])
    return start, end


def _result(
    by_step: Mapping[str, StepStatus],
    expected: Mapping[StepOutputRef, ResultId],
    ref: StepOutputRef,
) -> ResultId:
    """The result id a step reported for an output, else the one the job says it will have."""
    state = by_step.get(ref.step)
    if state is not None and ref.output in state.results:
        return state.results[ref.output]
    return expected[ref]


_SHAPES = {"entity": "ellipse", "activity": "box", "agent": "house"}
_EDGES = {
    "used": ("prov:activity", "prov:entity", "used"),
    "wasGeneratedBy": ("prov:entity", "prov:activity", "generated by"),
    "wasAssociatedWith": ("prov:activity", "prov:agent", "run by"),
    "actedOnBehalfOf": ("prov:delegate", "prov:responsible", "on behalf of"),
    "wasInformedBy": ("prov:informed", "prov:informant", "part of"),
}


def to_dot(document: Document) -> str:
    """A Graphviz `dot` graph of a PROV document (derivations left out: `used` shows them)."""
    lines = ["digraph provenance {", "  rankdir=BT;", '  node [fontname="Helvetica"];']
    for kind, shape in _SHAPES.items():
        for ident, attributes in sorted(document.get(kind, {}).items()):
            label = ident.removeprefix("mahiru:")
            if "prov:label" in attributes:
                label = f"{attributes['prov:label']}\\n{label}"
            lines.append(f"  {json.dumps(ident)} [shape={shape}, label={json.dumps(label)}];")
    for kind, (tail, head, text) in _EDGES.items():
        for attributes in document.get(kind, {}).values():
            label = text + (f" ({attributes['prov:role']})" if "prov:role" in attributes else "")
            lines.append(
                f"  {json.dumps(attributes[tail])} -> {json.dumps(attributes[head])}"
                f" [label={json.dumps(label)}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
