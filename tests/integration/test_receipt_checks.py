"""Receipts tried as an attacker would, where a site fetches a result and where it reuses one.

Two registered sites on loopback with real TLS: p2's site holds a result of
a job that p1's site runs on, under p2's rules. Each case puts a forged or
misplaced receipt in the result's record (at the holder, to be fetched; or
at the site itself, to be reused) and checks the site refuses it, through
the one check both paths use (`Receipts`). The pure checks, with more
variants of each attack, are in tests/unit/test_receipts.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, may_access, may_use, network

from mahiru.bootstrap import Site
from mahiru.errors import InvalidInput, NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.jobs import ResultProvenance, step_inputs
from mahiru.model.receipts import Receipt, ReceiptInput
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job, Plan
from mahiru.pki import load_tls_private_key
from mahiru.pki.keys import TlsPrivateKey
from mahiru.pki.signatures import sign_with_tls_key
from mahiru.services.jobs import KnownJob

pytestmark = pytest.mark.integration

DATA = "asset:p2.org:data:p2.org:site"
SCRIPT = "asset:p2.org:script:p2.org:site"
BASE = "asset:p2.org:base:p2.org:site"
RESULTS = "asset_collection:p2.org:results"
JOB_ID = "a" * 32


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """p1's site and p2's; p2's rules let p1's site (and party) have the results of p2's
    script on p2's data."""
    root = tmp_path_factory.mktemp("receipts")
    with network(root, sqlite_urls(root), ("p1", "p2")) as n:
        n.replicate_all()
        site1, site2 = n.sites["p1"], n.sites["p2"]
        with site2.admin() as admin:
            for rule in (
                {"type": "ResultOfDataIn", "data": DATA, "compute": "*", "output": "*",
                 "collection": RESULTS},
                {"type": "ResultOfDataIn", "data": BASE, "compute": "*", "output": "*",
                 "collection": RESULTS},
                {"type": "ResultOfComputeIn", "data": "*", "compute": SCRIPT, "output": "*",
                 "collection": RESULTS},
                may_access(site1.id, RESULTS),
                may_use(site1.party.id, RESULTS),  # the result is the job's output
            ):  # fmt: skip
                admin.add_rule(site2.party.sign(rule))
        yield n


def _graph(site: SiteServer) -> Site:
    return site.site


def _job(output: str) -> Job:
    """A one-step job of p1 on p2's data, script and output base, with output `output`
    (one per case, so each case has a result of its own)."""
    return job_from_dict(
        {
            "submitter": "party:p1.org:p1",
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": f"compute.{output}"},
                "steps": [{"name": "compute", "compute_asset": SCRIPT,
                           "inputs": {"input0": "input"}, "outputs": {output: BASE}}],
            },
            "inputs": {"input": DATA},
        }
    )  # fmt: skip


@dataclass(frozen=True)
class Forge:
    """What an attacker has to hand: the result, the image it holds, and keys."""

    job: Job
    result: ResultId
    digest: str
    maker: SiteId  # the site the plan has computing the result
    other_site: SiteId
    keys: dict[SiteId, TlsPrivateKey]
    party_key: Ed25519PrivateKey  # the maker's party's main key

    def receipt(
        self,
        *,
        result: ResultId | None = None,
        digest: str | None = None,
        site: SiteId | None = None,
        omit: str | None = None,
    ) -> Receipt:
        """The receipt the maker would sign, or one with a field changed (or an input
        item left out)."""
        output = next(iter(self.job.workflow.steps["compute"].outputs))
        inputs = [
            ReceiptInput("compute", SCRIPT, _hex("script image")),
            ReceiptInput("input0", DATA, _hex("data image")),
            ReceiptInput(f"@{output}", BASE, _hex("base image")),
        ]
        inputs = [i for i in inputs if i.item != omit]
        return Receipt.of(
            result or self.result, digest or self.digest, JOB_ID, "compute", output,
            site or self.maker, inputs, [_hex("rule")], datetime(2026, 12, 7, tzinfo=UTC),
        )  # fmt: skip

    def signed(self, receipt: Receipt, key: TlsPrivateKey | None = None) -> list[dict[str, Any]]:
        """The chain of one receipt, signed with `key` (the maker's TLS key by default)."""
        signature = sign_with_tls_key(key or self.keys[self.maker], receipt.canonical_bytes())
        return [{**receipt.to_dict(), "signature": base64.b64encode(signature).decode()}]


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sound(f: Forge) -> list[dict[str, Any]]:
    return f.signed(f.receipt())


def _another_result(f: Forge) -> list[dict[str, Any]]:
    return f.signed(f.receipt(result=ResultId(_hex("another result"))))


def _another_image(f: Forge) -> list[dict[str, Any]]:
    return f.signed(f.receipt(digest=_hex("another image")))


def _signed_by_another_site(f: Forge) -> list[dict[str, Any]]:
    return f.signed(f.receipt(), f.keys[f.other_site])


def _named_and_signed_by_another_site(f: Forge) -> list[dict[str, Any]]:
    return f.signed(f.receipt(site=f.other_site), f.keys[f.other_site])


def _without_its_output_base(f: Forge) -> list[dict[str, Any]]:
    output = next(iter(f.job.workflow.steps["compute"].outputs))
    return f.signed(f.receipt(omit=f"@{output}"))


def _time_not_canonical(f: Forge) -> list[dict[str, Any]]:
    # The maker's own signature, on a copy that writes the same instant another way.
    (signed,) = f.signed(f.receipt())
    return [{**signed, "at": "2026-12-07T00:00:00Z"}]


def _time_not_canonical_resigned(f: Forge) -> list[dict[str, Any]]:
    # The same, signed by the maker over the canonical JSON of exactly that copy.
    fields = {**f.receipt().to_dict(), "at": "2026-12-07T00:00:00.000+00:00"}
    signature = sign_with_tls_key(f.keys[f.maker], canonical_json(fields))
    return [{**fields, "signature": base64.b64encode(signature).decode()}]


def _signed_over_other_bytes(f: Forge) -> list[dict[str, Any]]:
    receipt = f.receipt()
    data = json.dumps(receipt.to_dict(), indent=1).encode()
    signature = sign_with_tls_key(f.keys[f.maker], data)
    return [{**receipt.to_dict(), "signature": base64.b64encode(signature).decode()}]


def _signed_with_party_key(f: Forge) -> list[dict[str, Any]]:
    receipt = f.receipt()
    signature = f.party_key.sign(receipt.canonical_bytes())
    return [{**receipt.to_dict(), "signature": base64.b64encode(signature).decode()}]


Attack = Callable[[Forge], list[dict[str, Any]]]
ATTACKS: dict[str, tuple[Attack, str]] = {
    "another-result": (_another_result, "no receipt for"),
    "another-image": (_another_image, "names image"),
    "signed-by-another-site": (_signed_by_another_site, "does not verify"),
    "time-not-canonical": (_time_not_canonical, "canonical form"),
    "time-not-canonical-resigned": (_time_not_canonical_resigned, "canonical form"),
    "signed-over-other-bytes": (_signed_over_other_bytes, "does not verify"),
    "signed-with-party-key": (_signed_with_party_key, "does not verify"),
}


def _hold(site: SiteServer, job: Job, image: Path, receipts: list[dict[str, Any]]) -> str:
    """Store the job's result at `site` as a hostile holder would: image, record with the
    given receipts, provenance; its image digest."""
    graph = _graph(site)
    repositories = graph.storage.repositories
    with image.open("rb") as content:
        info = graph.storage.blobs.write_stream(content)
    ((ref, result),) = job.result_ids().items()
    metadata = {"job_id": JOB_ID, "step": ref.step, "output": ref.output, "receipts": receipts}
    repositories.assets.add(Asset(result, AssetKind.DATA, metadata, info.digest), size=info.size)
    provenance = ResultProvenance(result, JOB_ID, ref.step, ref.output, job)
    repositories.results.provenance.add_provenance(provenance, graph.jobs.ports.ledger.now())
    return info.digest


def _forge(net: Network, job: Job, digest: str, maker: SiteServer, other: SiteServer) -> Forge:
    return Forge(
        job,
        next(iter(job.result_ids().values())),
        digest,
        SiteId.parse(maker.id),
        SiteId.parse(other.id),
        {SiteId.parse(s.id): load_tls_private_key(s.identity.key) for s in net.sites.values()},
        maker.party.main_key,
    )


def _fetch(net: Network, job: Job) -> None:
    """site1 fetches the job's result from site2, as a step there reads it."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    ports = _graph(site1).jobs.ports
    holder = SiteId.parse(site2.id)
    plan = Plan({"compute": holder})
    submitter = SiteId.parse(site1.id)
    expected = step_inputs(job, plan, "compute", submitter_site=submitter)
    result = next(iter(job.result_ids().values()))
    known = KnownJob(JOB_ID, job, plan, submitter)
    ports.receipts.fetch(known, ports.peers.get(holder), result, holder, expected)


#: Claims checked only where the plan says who makes the result and on what.
PLANNED: dict[str, tuple[Attack, str]] = {
    "made-elsewhere": (_named_and_signed_by_another_site, "computed at"),
    "omits-an-input": (_without_its_output_base, "does not list @out-fetch-omits-an-input"),
}


@pytest.mark.parametrize("case", [*ATTACKS, *PLANNED, "sound"])
def test_a_fetched_result_whose_receipt_does_not_hold_is_refused(
    net: Network, tmp_path: Path, case: str
) -> None:
    """site2 holds the result with a receipt of another result or image, one signed by
    another site, over non-canonical JSON or with the party key, one of the other site
    (valid, but not the site the plan has making it), or one leaving out an image the
    step runs on: site1 fetches nothing. The sound receipt is the control: it is
    fetched."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    job = _job(f"out-fetch-{case}")
    image = write_image(tmp_path / "result.tar", seed=case.encode())
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    forge = _forge(net, job, digest, site2, site1)
    if case == "sound":
        _hold(site2, job, image, _sound(forge))
        _fetch(net, job)
        assert _graph(site1).storage.blobs.has(digest)
        return
    attack, message = {**ATTACKS, **PLANNED}[case]
    _hold(site2, job, image, attack(forge))
    with pytest.raises(InvalidInput, match=message):
        _fetch(net, job)
    assert not _graph(site1).storage.blobs.has(digest)


@pytest.mark.parametrize("case", [*ATTACKS, "sound"])
def test_a_stored_result_whose_receipt_does_not_hold_is_not_reused(
    net: Network, tmp_path: Path, case: str
) -> None:
    """A result stored at site1 (collected from site2, say) whose record carries a bad
    receipt is not taken as computed: not reused, its chain not given to a step. The
    sound receipt is the control: it is reused."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    job = _job(f"out-reuse-{case}")
    image = write_image(tmp_path / "result.tar", seed=case.encode())
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    forge = _forge(net, job, digest, site2, site1)
    attack = _sound if case == "sound" else ATTACKS[case][0]
    _hold(site1, job, image, attack(forge))
    results = _graph(site1).jobs.ports.results
    result = forge.result
    assert results.stored(result) is (case == "sound")
    assert (results.verified_chain(result) is not None) is (case == "sound")


def test_a_result_nobody_holds_is_not_found(net: Network) -> None:
    """The control of the controls: asking site2 for a result it does not hold is a
    plain "not found", not a receipt error."""
    with pytest.raises(NotFound):
        _fetch(net, _job("out-nowhere"))
