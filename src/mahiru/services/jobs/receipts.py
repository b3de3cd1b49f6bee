"""This site's receipts for the results it computes, and its checks of other sites' receipts.

A result is run on, reused or collected only if its receipt chain verifies:
every receipt signed by the site that computed it (checked with that site's
certificate from the registry replica), its image the one the receipt names,
and what it says it ran on the same as what this job says the step runs on.
Whatever does not verify is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mahiru.errors import InvalidInput, NotFound
from mahiru.model.approvals import ReleaseEntry
from mahiru.model.digests import BlobInfo, normalise_digest
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import StepInput
from mahiru.model.receipts import (
    COMPUTE_ITEM,
    RECEIPTS_KEY,
    Receipt,
    ReceiptChain,
    ReceiptInput,
    SignedReceipt,
)
from mahiru.model.release_checks import verify_result
from mahiru.model.workflow import Job
from mahiru.pki.signatures import SiteSignatures
from mahiru.services.images import receive_image
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeer
from mahiru.services.site.transfers import TransferLog
from mahiru.services.site.validation import release_trust
from mahiru.storage import BlobStore, ReplicaRepository

__all__ = ["RECEIPTS_KEY", "Receipts", "ReviewRulesOf", "receipt_item"]

#: The ids of the ReleaseReviewedBy rules covering an item's result in a job, as the
#: policy in force says.
ReviewRulesOf = Callable[[Job, WorkflowItem], Sequence[str]]

#: Makes one request to a peer: `call(request, what)` (`what` names it in messages).
Call = Callable[[Callable[[], Any], str], Any]


def _direct(request: Callable[[], Any], what: str) -> Any:
    return request()


def receipt_item(needed: StepInput) -> str:
    """How a receipt names one thing a step runs on."""
    item = needed.item
    if item.kind is ItemKind.STEP:
        return COMPUTE_ITEM
    if item.kind is ItemKind.OUTPUT_BASE:
        return f"@{item.part}"
    return str(item.part)


class Receipts:
    """Makes and checks receipt chains for the results of one site, and fetches results
    from other sites only if theirs verify.

    Built once per site: every part of orchestration shares the one instance.
    """

    def __init__(
        self,
        ledger: JobLedger,
        sites: ReplicaRepository,
        blobs: BlobStore,
        transfers: TransferLog,
        sign: Callable[[bytes], bytes] | None,
        review_rules_of: ReviewRulesOf | None = None,
    ) -> None:
        self._ledger = ledger
        self._review_rules_of = review_rules_of
        self._sites = sites
        self._blobs = blobs
        self._transfers = transfers
        #: Signs what this site vouches for with its TLS key; None: no key.
        self._sign = sign

    def _certificate_of(self, site: SiteId) -> str | None:
        """The certificate the registry replica holds for `site`; None if it is unknown."""
        try:
            return self._sites.site(site).tls_cert_pem
        except NotFound:
            return None

    def _owner_of(self, site: SiteId) -> PartyId | None:
        try:
            return self._sites.site(site).owner
        except NotFound:
            return None

    def verify(
        self,
        result: ResultId,
        digest: str,
        metadata: Mapping[str, Any],
        *,
        received: bool = False,
    ) -> ReceiptChain:
        """The verified receipt chain in a result's metadata; InvalidInput/Signature if none.

        Each receipt and each signed release and approval is checked with the
        certificate the registry replica holds for the site it names (see
        `SiteSignatures`), each review rule with its owner's key, and every release a
        review rule needs must be there (`verify_result`); with `received`, also the
        release of `result` itself to this site's owner.
        """
        chain = ReceiptChain.from_metadata(metadata)
        trust = release_trust(self._sites.parties, self._owner_of)
        receiver = self._owner_of(self._ledger.site) if received else None
        verify_result(
            result,
            digest,
            chain,
            SiteSignatures(self._certificate_of),
            trust,
            released=received,
            receiver=receiver,
        )
        return chain

    def check_claims(
        self, chain: ReceiptChain, result: ResultId, producer: SiteId, expected: list[StepInput]
    ) -> None:
        """InvalidInput unless `result`'s receipt says it was computed at `producer` on
        what the job says the producing step runs on (`expected`): each image it lists
        is the one the job names, and it lists them all but those a step may have read
        live (step inputs bound to primary assets)."""
        signed = chain.of(result)
        assert signed is not None  # verify_chain found it
        receipt = signed.receipt
        if receipt.site != producer:
            raise InvalidInput(
                f"{result} was computed at {receipt.site}, but the plan has it made at {producer}",
                {"result": str(result)},
            )
        wanted = {receipt_item(n): str(n.asset) for n in expected}
        listed = {entry.item for entry in receipt.inputs}
        for needed in expected:
            # A step input bound to a primary asset may have been read live, and
            # what is read live is never copied, so not listed; all else must be.
            may_be_live = needed.item.kind is ItemKind.STEP_INPUT and isinstance(
                needed.asset, AssetId
            )
            if receipt_item(needed) not in listed and not may_be_live:
                raise InvalidInput(
                    f"the receipt of {result} does not list {receipt_item(needed)}"
                    f" ({needed.asset}), which the job says the step runs on",
                    {"result": str(result)},
                )
        for entry in receipt.inputs:
            if wanted.get(entry.item) != entry.id:
                raise InvalidInput(
                    f"the receipt of {result} says {entry.item} was {entry.id}, but the job"
                    f" has {wanted.get(entry.item)}",
                    {"result": str(result)},
                )

    def fetch(
        self,
        known: KnownJob,
        peer: JobPeer,
        result: ResultId,
        holder: SiteId,
        expected: list[StepInput] | None,
        call: Call = _direct,
    ) -> tuple[BlobInfo, ReceiptChain]:
        """Fetch a result from `holder` into this site's blobs, only if its receipts verify.

        With `expected` (what the producing step of this job runs on) the
        receipt must also say it was made at `holder` on exactly those.
        `call` wraps each request to the peer (to retry it, say).
        """
        record = call(lambda: peer.get_asset(result), f"receipts of {result}")
        digest = record.asset.image_digest
        if digest is None:
            raise InvalidInput(f"{result} at {holder} has no image")
        digest = normalise_digest(digest)
        chain = self.verify(result, digest, record.asset.metadata, received=True)
        if expected is not None:
            self.check_claims(chain, result, holder, expected)
        transfers = self._transfers
        started = transfers.started()
        info = call(
            lambda: receive_image(self._blobs, peer.fetch_result(result), str(result)),
            f"fetch {result}",
        )
        if info.digest != digest:
            raise InvalidInput(
                f"{holder} served {result} with sha256:{info.digest}, not the"
                f" sha256:{digest} its receipt names"
            )
        transfers.received(self._ledger.incoming(known, result, holder), info, started)
        return info, chain

    def make(
        self,
        known: KnownJob,
        step: str,
        output: str,
        result: ResultId,
        digest: str,
        inputs: list[ReceiptInput],
        rules: list[str],
        input_chains: list[ReceiptChain],
    ) -> ReceiptChain:
        """This site's signed receipt for a result it computed, with its inputs' chains."""
        ledger = self._ledger
        if self._sign is None:
            raise InvalidInput("this site has no key to sign receipts with (tls.key)")
        reviewed: Sequence[str] = ()
        if self._review_rules_of is not None:
            # Named in the signed receipt, so no later holder can strip a release it needs.
            item = WorkflowItem(ItemKind.STEP_OUTPUT, step, output)
            reviewed = self._review_rules_of(known.job, item)
        receipt = Receipt.of(
            result,
            digest,
            known.job_id,
            step,
            output,
            ledger.site,
            inputs,
            rules,
            ledger.now(),
            reviewed,
        )
        signed = SignedReceipt(receipt, self._sign(receipt.canonical_bytes()))
        receipts: dict[str, SignedReceipt] = {str(result): signed}
        releases: dict[tuple[ResultId, PartyId], ReleaseEntry] = {}
        for chain in input_chains:
            for entry in chain.receipts:
                receipts.setdefault(str(entry.receipt.result), entry)
            for release in chain.releases:
                releases.setdefault(release.key, release)
        return ReceiptChain(tuple(receipts.values()), tuple(releases.values()))
