"""What the Reviews pages show of a review besides the review itself: who asked for the
job and whose data went into it, and how each of the result's files may be shown in a
browser without running anything it holds."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from mahiru.errors import NotFound
from mahiru.model.identifiers import AssetId
from mahiru.model.reviews import Review
from mahiru.services.jobs import JobServices

#: The most bytes of a file the file page reads to show it as text or as a table.
SHOWN_BYTES = 256 * 1024
#: The most rows of a table the file page shows.
SHOWN_ROWS = 200

FileKind = Literal["text", "table", "image", "download"]
#: Images a browser shows inline, by extension, with the only Content-Type they are served
#: as. SVG is not among them: it may hold scripts, so it is shown as text.
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
_TABLES = frozenset({".csv", ".tsv"})
_TEXTS = frozenset(
    {
        ".txt", ".json", ".md", ".log", ".html", ".htm", ".xml", ".svg", ".yaml", ".yml",
        ".py", ".r", ".sql", ".ini", ".toml", ".jsonl", ".tex", ".rst",
    }
)  # fmt: skip


def file_kind(path: str) -> FileKind:
    """How the file page shows the file at `path`: as escaped text, as a table, as an image,
    or only as a download."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _TABLES:
        return "table"
    if suffix in IMAGE_TYPES:
        return "image"
    if suffix in _TEXTS or not suffix:
        return "text"
    return "download"


@dataclass(frozen=True, slots=True)
class Shown:
    """The start of a file as the file page shows it: text, or a table's rows."""

    text: str
    rows: list[list[str]]
    cut: bool  # whether the file goes on past what is shown


def shown(path: str, head: bytes, size: int) -> Shown:
    """The file at `path` as far as `head` (its first bytes) goes: decoded text (bytes
    that are not UTF-8 replaced) and, for a table, its first SHOWN_ROWS rows."""
    text = head.decode("utf-8", "replace")
    cut = size > len(head)
    if file_kind(path) != "table":
        return Shown(text, [], cut)
    if cut:  # the last line may be cut in the middle: leave it out
        text = text.rsplit("\n", 1)[0]
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    rows: list[list[str]] = []
    for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
        if len(rows) == SHOWN_ROWS:
            cut = True
            break
        rows.append(row)
    return Shown(text, rows, cut)


def head_of(chunks: Iterator[bytes], limit: int) -> bytes:
    """Up to `limit` bytes from `chunks`; the rest is dropped, and the reading closed."""
    taken = bytearray()
    try:
        for chunk in chunks:
            taken += chunk
            if len(taken) >= limit:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # removes the image's copy at once rather than when collected
    return bytes(taken[:limit])


@dataclass(frozen=True, slots=True)
class ReviewContext:
    """Who asked for the review's job and whose assets it read, as far as this site knows."""

    submitter: str
    #: Whether `submitter` comes from the job's records here (else: the receiving party).
    known_job: bool
    #: The owners (namespaces) of the job's input assets; results of other jobs are named.
    owners: list[str]


def context_of(review: Review, jobs: JobServices) -> ReviewContext:
    """The submitter and the inputs' owners of the job that made the review's result, from
    the job's records at this site (submitted here, or with steps handed here); without
    them, the party the result would go to stands for the submitter."""
    records = jobs.ports.ledger.job_records
    try:
        status = records.get_job(review.job_id)
        job, submitter = status.job, status.submitted_by or str(status.job.submitter)
    except NotFound:
        try:
            job = records.assignment(review.job_id).job
        except NotFound:
            return ReviewContext(str(review.receiving_party), False, [])
        submitter = str(job.submitter)
    owners = sorted(
        {
            asset.namespace if isinstance(asset, AssetId) else f"result {str(asset)[:16]}…"
            for asset in job.inputs.values()
        }
    )
    return ReviewContext(submitter, True, owners)
