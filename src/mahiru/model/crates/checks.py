"""Checking a job's crate offline: its receipt chains, and its files against them.

Every file the crate's root names (`hasPart`) must be there; every file in it
must be named there; every receipt chain file (`conformsTo` the receipt chain
format) must verify, by the registry's records, for the result and image digest
it names; and every other file but the descriptions (README, workflow, PROV
document) is an image that must name its Mahiru id as `identifier` and have
exactly a digest a verified receipt signs for that id: the result's own, or the
one a step that ran on it names. A file no verified receipt vouches for fails
the check, so removing a receipt leaves its output unvouched for. The
descriptions are not signed: the receipts, not they, are the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.crates.values import (
    METADATA_FILE,
    PROVENANCE_FILE,
    README_FILE,
    RECEIPTS_FORMAT,
    WORKFLOW_FILE,
)
from mahiru.model.identifiers import ResultId, parse_identifier
from mahiru.model.receipts import ReceiptChain

#: Checks a result's chain (`release_checks.verify_result` with the registry's keys);
#: the lines of what it verified.
ChainCheck = Callable[[ResultId, str, ReceiptChain], list[str]]


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item["@id"] for item in items if isinstance(item, Mapping) and "@id" in item]


def _entities(metadata: Any) -> dict[str, Mapping[str, Any]]:
    graph = metadata.get("@graph") if isinstance(metadata, Mapping) else None
    if not isinstance(graph, list):
        raise InvalidInput(f"{METADATA_FILE} has no @graph: not an RO-Crate")
    return {e["@id"]: e for e in graph if isinstance(e, Mapping) and isinstance(e.get("@id"), str)}


def check_crate(
    metadata: Any,
    file_digest: Callable[[str], str | None],
    load_document: Callable[[str], Any],
    check_chain: ChainCheck,
    present: Iterable[str] = (),
) -> list[str]:
    """The lines of what was verified in a crate; InvalidInput naming the first file or
    receipt that fails (InvalidSignature for a signature that does not verify).

    `file_digest(path)` is the hex sha256 of a file in the crate (None if it is not
    there); `load_document(path)` its parsed JSON; `present` the files the crate holds,
    each of which its root must list (so nothing rides along unchecked).
    """
    entities = _entities(metadata)
    root = entities.get("./")
    if root is None:
        raise InvalidInput(f"{METADATA_FILE} has no root data entity './'")
    parts = _ids(root.get("hasPart", []))
    unlisted = sorted(set(present) - set(parts) - {METADATA_FILE})
    if unlisted:
        raise InvalidInput(
            f"{unlisted[0]} is in the crate but its metadata does not list it",
            {"files": unlisted},
        )
    digests: dict[str, str] = {}
    for path in parts:
        digest = file_digest(path)
        if digest is None:
            raise InvalidInput(f"{path} is named by the crate but is not in it", {"file": path})
        digests[path] = digest
    lines: list[str] = []
    # Mahiru id -> the digests verified receipts sign for it (an asset may have been
    # replaced between the jobs of a chain: each digest a receipt names is vouched for)
    signed: dict[str, set[str]] = {}
    for path in parts:
        if RECEIPTS_FORMAT not in _ids(entities.get(path, {}).get("conformsTo", [])):
            continue
        record = load_document(path)
        if not isinstance(record, Mapping) or not isinstance(record.get("metadata"), Mapping):
            raise InvalidInput(f"{path}: not a receipt chain record", {"file": path})
        result = parse_identifier(str(record.get("id")), ("result",))
        assert isinstance(result, ResultId)  # guaranteed by the allowed kind
        digest = str(record.get("image_digest") or "").removeprefix("sha256:")
        chain = ReceiptChain.from_metadata(record["metadata"])
        lines += [f"{path}: {line}" for line in check_chain(result, digest, chain)]
        for receipt in (s.receipt for s in chain.receipts):
            signed.setdefault(str(receipt.result), set()).add(receipt.digest)
            for entry in receipt.inputs:
                signed.setdefault(entry.id, set()).add(entry.digest)
    documents = {README_FILE, WORKFLOW_FILE, PROVENANCE_FILE}
    for path in parts:
        entity = entities.get(path, {})
        identifier = entity.get("identifier")
        if path in documents or RECEIPTS_FORMAT in _ids(entity.get("conformsTo", [])):
            continue
        if not isinstance(identifier, str):
            # Every other file is an image: one that names no id would go unchecked.
            raise InvalidInput(
                f"{path} names no Mahiru id, so no receipt can vouch for it", {"file": path}
            )
        vouched = signed.get(identifier, set())
        if not vouched:
            raise InvalidInput(
                f"{path} ({identifier}): no verified receipt in the crate signs its digest",
                {"file": path},
            )
        if digests[path] not in vouched:
            named = ", ".join(f"sha256:{d}" for d in sorted(vouched))
            raise InvalidInput(
                f"{path} ({identifier}) has sha256:{digests[path]}, but the receipts sign {named}",
                {"file": path},
            )
        lines.append(f"{path}: sha256:{digests[path]}, as the receipts sign for {identifier}")
    return lines
