"""How verifying a receipt chain scales: chains of 1,000 to 10,000 receipts.

Usage: .venv/bin/python benchmarks/receipts.py [--quick] [--repeat R]

Each chain is built from a fixed seed: result i is computed at one of three
sites (in turn) on result i-1 and on one earlier result drawn at random, so
sub-chains are shared by many results, as in a workflow whose later steps
read several earlier outputs. Every receipt is signed with its site's TLS key
(building is not timed). For each size the table gives the time to parse the
chain from its JSON form (what a site reads from a result's record, or
`mahiru results verify` from a file), the time to verify it with the sites'
certificates (each receipt's signature, and each link's digest), both the
best of R runs (default 3), the time per receipt, and that time as a ratio of
the smallest chain's: linear verification keeps the ratio near 1.
`--quick` stops at 2,000 receipts and runs each once (a smoke test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mahiru import pki
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.receipts import Receipt, ReceiptChain, ReceiptInput, SignedReceipt, verify_chain
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key

SIZES = (1_000, 2_000, 5_000, 10_000)
SITES = tuple(SiteId.parse(f"site:p{i}.example.org:site{i}") for i in (1, 2, 3))
COMPUTE = ReceiptInput(
    "compute",
    "asset:p1.example.org:script:p1.example.org:site1",
    hashlib.sha256(b"script").hexdigest(),
)


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_chain(size: int, keys: dict[SiteId, pki.CertifiedKey], seed: int) -> list[Any]:
    """The JSON form of a chain of `size` receipts, the last result's first."""
    rng = random.Random(seed)
    results = [ResultId(_hex(f"result {i}")) for i in range(size)]
    digests = [_hex(f"image {i}") for i in range(size)]
    at = datetime(2026, 12, 7, tzinfo=UTC)
    signed: list[SignedReceipt] = []
    for i, result in enumerate(results):
        inputs = [COMPUTE]
        for name, j in (("previous", i - 1), ("earlier", rng.randrange(i) if i > 1 else -1)):
            if j >= 0:
                inputs.append(ReceiptInput(name, str(results[j]), digests[j]))
        site = SITES[i % len(SITES)]
        receipt = Receipt.of(
            result, digests[i], "0" * 32, f"s{i}", "out", site, inputs, [_hex("rule")], at
        )
        signature = sign_with_tls_key(keys[site].private_key, receipt.canonical_bytes())
        signed.append(SignedReceipt(receipt, signature))
    return [r.to_dict() for r in reversed(signed)]


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """The shortest of `repeat` timed runs of `work`, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Build, parse and verify each chain; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="stop at 2,000 receipts")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (best)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    ca = pki.create_network_ca()
    keys = {site: pki.issue_site_certificate(ca, str(site)) for site in SITES}
    certificates = {site: pki.certificate_pem(k.certificate) for site, k in keys.items()}
    header = (
        f"{'receipts':>9} {'links':>7} {'parse s':>8} {'verify s':>9} {'total s':>8}"
        f" {'µs/receipt':>11} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    first: float | None = None
    for size in SIZES[:2] if args.quick else SIZES:
        # Through JSON text, as it is stored and sent.
        text = json.dumps(build_chain(size, keys, seed=size))
        data = json.loads(text)
        top = ReceiptChain.from_list(data).receipts[0].receipt
        links = sum(len(r["inputs"]) - 1 for r in data)
        parse = best_of(args.repeat, lambda data=data: ReceiptChain.from_list(data))
        chain = ReceiptChain.from_list(data)

        def verify(chain: ReceiptChain = chain, top: Receipt = top, size: int = size) -> None:
            # A fresh check per run, as each verification of a chain makes one.
            check = SiteSignatures(certificates.get)
            if len(verify_chain(top.result, top.digest, chain, check)) != size:
                raise SystemExit("the chain did not verify whole")

        checked = best_of(args.repeat, verify)
        per_receipt = (parse + checked) / size
        first = first or per_receipt
        print(
            f"{size:>9,} {links:>7,} {parse:>8.3f} {checked:>9.3f} {parse + checked:>8.3f}"
            f" {per_receipt * 1e6:>11.1f} {per_receipt / first:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
