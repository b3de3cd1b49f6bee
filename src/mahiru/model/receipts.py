"""Result receipts: what a site signs about each result it computed.

A result id names how a result was computed, not what it holds, so anyone can
name one; a receipt says what was actually made. The producing site signs a
canonical JSON document with the result id, the digest of its image, the
job, step and output it came from, the digest of every image the step ran on
(the compute asset, each input, each output base) and the ids of the rules
that allowed it, and the time. Whoever holds the registry's site records can
check a receipt offline; a result built on other results carries their
receipts too (`ReceiptChain`), so the whole derivation can be checked.

A receipt has one written form. The signature covers the canonical JSON
bytes of its fields (`canonical_json`), never the bytes it arrived in, so a
signature made over any other byte form (key order, whitespace, escapes)
does not verify; and a receipt whose fields are not written the one way
`to_dict` writes them (a time in another ISO form, inputs or rules out of
order or repeated, a signature in padded-differently base64) is refused as
it is parsed, before its signature is looked at, so no two documents pass
for the same signed receipt.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.approvals import ReleaseEntry, rule_ids
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import JobId, ResultId, SiteId, parse_identifier

_HEX = re.compile(r"[0-9a-f]{64}")

#: The item of a step's compute asset in a receipt's inputs (step inputs use
#: their names, output bases `@<output>`).
COMPUTE_ITEM = "compute"


@dataclass(frozen=True, slots=True)
class ReceiptInput:
    """One image a step ran on: its item, its asset or result id, and its digest."""

    item: str
    id: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {"item": self.item, "id": self.id, "digest": self.digest}


@dataclass(frozen=True, slots=True)
class Receipt:
    """What `site` says it computed: `result`, whose image has `digest`."""

    result: ResultId
    digest: str
    job_id: JobId
    step: str
    output: str
    site: SiteId
    inputs: tuple[ReceiptInput, ...]
    rules: tuple[str, ...]
    at: datetime
    #: The ReleaseReviewedBy rules that covered the result when it was made: each release
    #: of it must carry the producer's signed release (`model/approvals.py`). Written only
    #: when there are some, so receipts of unreviewed results keep their first form.
    review_rules: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what is signed, in canonical form)."""
        reviewed = {"review_rules": list(self.review_rules)} if self.review_rules else {}
        return {
            **reviewed,
            "result": str(self.result),
            "digest": self.digest,
            "job_id": self.job_id,
            "step": self.step,
            "output": self.output,
            "site": str(self.site),
            "inputs": [i.to_dict() for i in self.inputs],
            "rules": list(self.rules),
            "at": self.at.isoformat(),
        }

    def canonical_bytes(self) -> bytes:
        """The bytes the producing site signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> Receipt:
        """Parse the JSON form strictly; InvalidInput naming what is wrong."""
        keys = {"result", "digest", "job_id", "step", "output", "site", "inputs", "rules", "at"}
        if isinstance(data, Mapping) and "review_rules" in data:
            keys.add("review_rules")
        if not isinstance(data, Mapping) or set(data) != keys:
            raise InvalidInput(
                f"a receipt has exactly the fields {sorted(keys)} (and may have review_rules)"
            )
        result = parse_identifier(_text(data, "result"), ("result",))
        assert isinstance(result, ResultId)  # guaranteed by the allowed kind
        inputs = data["inputs"]
        if not isinstance(inputs, list):
            raise InvalidInput("receipt inputs must be a list")
        parsed_inputs = []
        for entry in inputs:
            if not isinstance(entry, Mapping) or set(entry) != {"item", "id", "digest"}:
                raise InvalidInput("each receipt input has exactly: item, id, digest")
            parsed_inputs.append(
                ReceiptInput(_text(entry, "item"), _text(entry, "id"), _digest(entry, "digest"))
            )
        rules = data["rules"]
        if not isinstance(rules, list) or not all(
            isinstance(r, str) and _HEX.fullmatch(r) for r in rules
        ):
            raise InvalidInput("receipt rules must be a list of rule ids")
        review_rules = rule_ids(data.get("review_rules", []), "receipt review_rules")
        try:
            at = datetime.fromisoformat(_text(data, "at"))
        except ValueError:
            raise InvalidInput("receipt time is not an ISO 8601 time") from None
        if at.utcoffset() != timedelta(0):
            # One instant, one written form: the time in UTC, as `isoformat` writes it.
            raise InvalidInput("receipt time must be in UTC, with its offset (+00:00)")
        receipt = cls.of(
            result,
            _digest(data, "digest"),
            JobId(_text(data, "job_id")),
            _text(data, "step"),
            _text(data, "output"),
            SiteId.parse(_text(data, "site")),
            parsed_inputs,
            rules,
            at,
            review_rules,
        )
        # `of` orders inputs and rules and keeps each once; any other form differs.
        written = receipt.to_dict()
        for key in sorted(keys):
            if written.get(key) != data[key]:
                raise InvalidInput(
                    f"receipt field {key!r} is not in its canonical form", {"field": key}
                )
        return receipt

    @classmethod
    def of(
        cls,
        result: ResultId,
        digest: str,
        job_id: JobId,
        step: str,
        output: str,
        site: SiteId,
        inputs: Sequence[ReceiptInput],
        rules: Sequence[str],
        at: datetime,
        review_rules: Sequence[str] = (),
    ) -> Receipt:
        """A receipt in canonical form: inputs in order, rules sorted, each once."""
        ordered = tuple(sorted(set(inputs), key=lambda i: (i.item, i.id, i.digest)))
        return cls(
            result,
            digest,
            job_id,
            step,
            output,
            site,
            ordered,
            tuple(sorted(set(rules))),
            at,
            tuple(sorted(set(review_rules))),
        )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value or len(value) > 512:
        raise InvalidInput(f"receipt field {key!r} must be text, got {value!r:.80}")
    return value


def _digest(data: Mapping[str, Any], key: str) -> str:
    value = _text(data, key)
    if not _HEX.fullmatch(value):
        raise InvalidInput(f"receipt field {key!r} must be a sha256 hex digest")
    return value


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt with its producing site's signature over its canonical bytes."""

    receipt: Receipt
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the receipt's fields plus base64 `signature`."""
        return {**self.receipt.to_dict(), "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_dict(cls, data: object) -> SignedReceipt:
        """Parse the JSON form strictly."""
        if not isinstance(data, Mapping) or "signature" not in data:
            raise InvalidInput("a signed receipt needs a 'signature'")
        signature = data["signature"]
        try:
            decoded = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise InvalidInput("receipt signature is not base64") from None
        if base64.b64encode(decoded).decode() != signature:
            raise InvalidInput("receipt signature is not in canonical base64")
        return cls(Receipt.from_dict({k: v for k, v in data.items() if k != "signature"}), decoded)


#: Checks `signature` over `data` with the registered key of `site`; raises
#: InvalidSignature (with the reason) if it does not verify or the site is unknown.
SignatureCheck = Callable[[SiteId, bytes, bytes], None]


#: Where a result's chain is kept in the metadata of its asset record: its receipts, and
#: (only when it has any) the releases of reviewed results it carries.
RECEIPTS_KEY = "receipts"
RELEASES_KEY = "releases"


@dataclass(frozen=True, slots=True)
class ReceiptChain:
    """A result's receipt and those of the results it was built on, recursively, with the
    reviewed releases of any of them (`ReleaseEntry`, at most one per result and party).

    A chain holds at most one receipt per result (InvalidInput otherwise), and
    finds each by its result id in constant time.
    """

    receipts: tuple[SignedReceipt, ...]
    releases: tuple[ReleaseEntry, ...] = ()
    _index: dict[ResultId, SignedReceipt] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[ResultId, SignedReceipt] = {}
        for signed in self.receipts:
            result = signed.receipt.result
            if result in index:
                raise InvalidInput(
                    f"the receipt chain holds more than one receipt of {result}",
                    {"result": str(result)},
                )
            index[result] = signed
        object.__setattr__(self, "_index", index)
        keys = [entry.key for entry in self.releases]
        if len(set(keys)) != len(keys):
            raise InvalidInput("the receipt chain holds two releases of one result to one party")

    def to_list(self) -> list[dict[str, Any]]:
        """The JSON form of the receipts."""
        return [r.to_dict() for r in self.receipts]

    def to_metadata(self) -> dict[str, Any]:
        """The chain as a result's record keeps it: `receipts`, and `releases` if any."""
        if not self.releases:
            return {RECEIPTS_KEY: self.to_list()}
        releases = sorted(self.releases, key=lambda e: tuple(map(str, e.key)))
        return {RECEIPTS_KEY: self.to_list(), RELEASES_KEY: [e.to_dict() for e in releases]}

    @classmethod
    def from_list(cls, data: object) -> ReceiptChain:
        """Parse the JSON form (a list of signed receipts)."""
        if not isinstance(data, list) or not data or len(data) > 10_000:
            raise InvalidInput("a receipt chain is a non-empty list of receipts")
        return cls(tuple(SignedReceipt.from_dict(entry) for entry in data))

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ReceiptChain:
        """Parse the chain a result's record keeps (`to_metadata`); a record without
        `releases` (every record before reviews were recorded) has none."""
        chain = cls.from_list(metadata.get(RECEIPTS_KEY))
        releases = metadata.get(RELEASES_KEY, [])
        if not isinstance(releases, list) or len(releases) > 10_000:
            raise InvalidInput("a chain's releases are a list of release entries")
        return cls(chain.receipts, tuple(ReleaseEntry.from_dict(entry) for entry in releases))

    def of(self, result: ResultId) -> SignedReceipt | None:
        """The receipt of `result` in the chain, if there is one."""
        return self._index.get(result)

    def with_release(self, entry: ReleaseEntry) -> ReceiptChain:
        """This chain with `entry` (replacing any earlier release of its result to its
        party)."""
        kept = tuple(e for e in self.releases if e.key != entry.key)
        return ReceiptChain(self.receipts, (*kept, entry))


def verify_chain(
    result: ResultId, digest: str, chain: ReceiptChain, check: SignatureCheck
) -> list[str]:
    """Check `result`'s whole derivation; the lines of what was verified.

    Every receipt must be signed by its producing site; `result` must have
    image `digest`; every input that is a result must have a receipt in the
    chain whose digest is the one its consumer says it ran on. Raises
    InvalidSignature (a bad or forged signature) or InvalidInput (a broken
    link), naming the receipt.

    Linear in the chain: each receipt is found by its result id in constant
    time and its signature checked once, however many results were built on
    it; each further use of it only compares the digest its consumer names.
    """
    lines: list[str] = []
    pending: list[tuple[ResultId, str, str]] = [(result, digest, "the result")]
    seen: set[str] = set()
    while pending:
        wanted, wanted_digest, why = pending.pop()
        signed = chain.of(wanted)
        if signed is None:
            raise InvalidInput(f"no receipt for {wanted} ({why})", {"result": str(wanted)})
        receipt = signed.receipt
        if receipt.digest != wanted_digest:
            raise InvalidInput(
                f"the receipt of {wanted} names image sha256:{receipt.digest}, but {why}"
                f" has sha256:{wanted_digest}",
                {"result": str(wanted)},
            )
        if str(wanted) in seen:
            continue
        seen.add(str(wanted))
        check(receipt.site, receipt.canonical_bytes(), signed.signature)
        lines.append(
            f"{wanted}: sha256:{receipt.digest}, step {receipt.step}.{receipt.output} of job"
            f" {receipt.job_id}, computed at {receipt.site}, signed by it"
        )
        for entry in receipt.inputs:
            if entry.id.startswith("result:"):
                parsed = parse_identifier(entry.id, ("result",))
                assert isinstance(parsed, ResultId)
                pending.append((parsed, entry.digest, f"{wanted} ran on it as {entry.item}"))
    return lines
