"""SVG pictures for the dashboard, drawn on the server: a workflow graph and a step timeline.

Pure functions from values to SVG text (no I/O). The graph puts each step in
the column of its longest path from the workflow's inputs, so every edge
points right; the timeline draws one bar per step from its start to its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from mahiru.model.jobs import StepState, StepStatus
from mahiru.model.workflow import StepOutputRef, Workflow

#: Fill colour of a step in each state (the rest: grey).
STATE_COLOURS = {
    StepState.WAITING: "#d9d9d9",
    StepState.FETCHING: "#9ecae1",
    StepState.RUNNING: "#4292c6",
    StepState.STORING: "#6baed6",
    StepState.SUCCEEDED: "#74c476",
    StepState.FAILED: "#fb6a4a",
    StepState.CANCELLED: "#fdae6b",
}
_UNKNOWN = "#eeeeee"

_COLUMN, _ROW, _BOX_W, _BOX_H = 230, 58, 190, 42


def _text(x: float, y: float, text: str, **attributes: str) -> str:
    extra = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in attributes.items())
    return f'<text x="{x:.0f}" y="{y:.0f}"{extra}>{escape(text)}</text>'


def workflow_graph(
    workflow: Workflow,
    states: Mapping[str, StepState],
    sites: Mapping[str, str],
) -> str:
    """The workflow as a left-to-right graph: inputs, steps (coloured by state, labelled with
    their site) and outputs."""
    column: dict[str, int] = {}
    for name in workflow.topological_order():
        sources = workflow.steps[name].inputs.values()
        before = [column[s.step] for s in sources if isinstance(s, StepOutputRef)]
        column[name] = 1 + max(before, default=0)
    last = max(column.values(), default=0) + 1
    layers: dict[int, list[str]] = {0: [f"in:{name}" for name in workflow.inputs]}
    for name in sorted(column, key=lambda n: (column[n], n)):
        layers.setdefault(column[name], []).append(name)
    layers[last] = [f"out:{name}" for name in workflow.outputs]
    place: dict[str, tuple[float, float]] = {}
    for layer, names in layers.items():
        for row, name in enumerate(names):
            place[name] = (10 + layer * _COLUMN, 10 + row * _ROW)
    width = 20 + last * _COLUMN + _BOX_W
    height = 20 + max(len(names) for names in layers.values()) * _ROW
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif"'
        ' font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6"'
        ' markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
    ]

    def edge(source: str, target: str) -> None:
        (x1, y1), (x2, y2) = place[source], place[target]
        x1, y1, y2 = x1 + _BOX_W, y1 + _BOX_H / 2, y2 + _BOX_H / 2
        middle = (x1 + x2) / 2
        parts.append(
            f'<path d="M{x1:.0f},{y1:.0f} C{middle:.0f},{y1:.0f} {middle:.0f},{y2:.0f}'
            f' {x2:.0f},{y2:.0f}" fill="none" stroke="#555" marker-end="url(#arrow)"/>'
        )

    for name, step in workflow.steps.items():
        for source in step.inputs.values():
            edge(source.step if isinstance(source, StepOutputRef) else f"in:{source}", name)
    for output, ref in workflow.outputs.items():
        edge(ref.step, f"out:{output}")
    for name, (x, y) in place.items():
        if name.startswith(("in:", "out:")):
            kind, _, label = name.partition(":")
            parts.append(
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="21"'
                f' fill="#ffffff" stroke="#555" class="{kind}put"/>'
            )
            parts.append(_text(x + _BOX_W / 2, y + 25, label, text_anchor="middle"))
            continue
        state = states.get(name)
        fill = STATE_COLOURS.get(state, _UNKNOWN) if state is not None else _UNKNOWN
        state_text = state.value if state is not None else "unknown"
        parts.append(
            f'<g class="step" data-step="{escape(name)}" data-state="{state_text}">'
            f"<title>{escape(name)}: {state_text} at {escape(sites.get(name, '?'))}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="4"'
            f' fill="{fill}" stroke="#333"/>'
        )
        parts.append(_text(x + 6, y + 17, name, font_weight="bold"))
        parts.append(_text(x + 6, y + 34, sites.get(name, "?"), font_size="10"))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def timeline(steps: Sequence[StepStatus], now: datetime) -> str:
    """A Gantt chart: per step, a bar from its start to its end (or now), coloured by state."""
    label_w, bar_w, row = 170, 600, 22
    started = [s.started_at for s in steps if s.started_at is not None]
    height = 30 + row * max(len(steps), 1)
    header = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{label_w + bar_w + 20}"'
        f' height="{height}" font-family="sans-serif" font-size="11">'
    )
    if not started:
        return header + _text(10, 20, "no step has started yet") + "</svg>"
    origin = min(started)
    ends = [s.finished_at or now for s in steps if s.started_at is not None]
    span = (max(ends) - origin).total_seconds() or 1.0
    scale = bar_w / span
    parts = [header]
    for tick in range(5):
        seconds = span * tick / 4
        x = label_w + seconds * scale
        parts.append(f'<line x1="{x:.0f}" y1="14" x2="{x:.0f}" y2="{height}" stroke="#ddd"/>')
        parts.append(_text(x, 11, f"{seconds:.1f} s", text_anchor="middle"))
    for index, step in enumerate(steps):
        y = 20 + index * row
        parts.append(_text(4, y + 13, step.step))
        if step.started_at is None:
            parts.append(_text(label_w, y + 13, f"({step.state.value})", fill="#777"))
            continue
        end = step.finished_at or now
        x = label_w + (step.started_at - origin).total_seconds() * scale
        width = max((end - step.started_at).total_seconds() * scale, 2)
        fill = STATE_COLOURS.get(step.state, _UNKNOWN)
        seconds = (end - step.started_at).total_seconds()
        parts.append(
            f'<rect class="bar" data-step="{escape(step.step)}" x="{x:.0f}" y="{y}"'
            f' width="{width:.0f}" height="{row - 6}" fill="{fill}" stroke="#333">'
            f"<title>{escape(step.step)}: {step.state.value}, {seconds:.1f} s</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
