"""`mahiru results verify`, tried as an attacker would: forged receipts checked offline.

The chain is result b, computed at site1 on result a, computed at site2; the
files are what `mahiru assets show --json` and `mahiru register show --json`
write. Each case breaks one thing an attacker controls (the receipts, the
record, or a registry file that maps ids to certificates) and expects exit 1
with the reason (exit 2 for records that cannot be believed). A full job's
chain is verified by tests/e2e/test_jobs_chain.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mahiru import pki
from mahiru.cli.results import results_group
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.receipts import Receipt, ReceiptInput
from mahiru.pki.signatures import sign_with_tls_key

pytestmark = pytest.mark.integration

CA = pki.create_network_ca()
SITE1, SITE2 = SiteId.parse("site:p1.org:site1"), SiteId.parse("site:p2.org:site2")
KEYS = {site: pki.issue_site_certificate(CA, str(site)) for site in (SITE1, SITE2)}
PARTY_KEY = pki.generate_party_key()


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


A, B = ResultId(_hex("a")), ResultId(_hex("b"))
DA, DB = _hex("image a"), _hex("image b")
COMPUTE = ReceiptInput("compute", "asset:p1.org:script:p1.org:site1", _hex("script"))
DATA = ReceiptInput("input0", "asset:p2.org:d:p2.org:site2", _hex("d"))


def _receipt(result: ResultId, digest: str, site: SiteId, inputs: list[ReceiptInput]) -> Receipt:
    return Receipt.of(
        result, digest, "0" * 32, "s", "o", site, inputs, [_hex("rule")],
        datetime(2026, 12, 7, tzinfo=UTC),
    )  # fmt: skip


def _sign(receipt: Receipt, signature: bytes) -> dict[str, Any]:
    return {**receipt.to_dict(), "signature": base64.b64encode(signature).decode()}


def _by(site: SiteId, receipt: Receipt, data: bytes | None = None) -> dict[str, Any]:
    signature = sign_with_tls_key(KEYS[site].private_key, data or receipt.canonical_bytes())
    return _sign(receipt, signature)


RECEIPT_A = _receipt(A, DA, SITE2, [COMPUTE, DATA])
RECEIPT_B = _receipt(B, DB, SITE1, [COMPUTE, ReceiptInput("input0", str(A), DA)])


def _files() -> tuple[dict[str, Any], dict[str, Any]]:
    """The result's record and the registry's records, as the CLI writes them."""
    record = {
        "id": str(B),
        "image_digest": f"sha256:{DB}",
        "metadata": {"receipts": [_by(SITE1, RECEIPT_B), _by(SITE2, RECEIPT_A)]},
    }
    registry = {
        "parties": [],
        "sites": [
            {"id": str(site), "tls_cert_pem": pki.certificate_pem(key.certificate)}
            for site, key in KEYS.items()
        ],
    }
    return record, registry


Change = Callable[[dict[str, Any], dict[str, Any]], None]


def _another_result(record: dict[str, Any], registry: dict[str, Any]) -> None:
    record["id"] = str(ResultId(_hex("another result")))  # b's valid chain, for another id


def _another_image(record: dict[str, Any], registry: dict[str, Any]) -> None:
    record["image_digest"] = f"sha256:{_hex('another image')}"


def _input_of_another_image(record: dict[str, Any], registry: dict[str, Any]) -> None:
    other = _receipt(A, _hex("another image"), SITE2, [COMPUTE, DATA])
    record["metadata"]["receipts"][1] = _by(SITE2, other)


def _input_signed_by_another_site(record: dict[str, Any], registry: dict[str, Any]) -> None:
    record["metadata"]["receipts"][1] = _by(SITE1, RECEIPT_A)


def _certificate_of_another_site(record: dict[str, Any], registry: dict[str, Any]) -> None:
    # site2's id with site1's certificate; the receipt of a re-signed by site1.
    registry["sites"][1]["tls_cert_pem"] = registry["sites"][0]["tls_cert_pem"]
    record["metadata"]["receipts"][1] = _by(SITE1, RECEIPT_A)


def _time_not_canonical(record: dict[str, Any], registry: dict[str, Any]) -> None:
    record["metadata"]["receipts"][1]["at"] = "2026-12-07T00:00:00Z"  # the same instant


def _inputs_out_of_order(record: dict[str, Any], registry: dict[str, Any]) -> None:
    receipt = record["metadata"]["receipts"][0]
    receipt["inputs"] = list(reversed(receipt["inputs"]))


def _signed_over_other_bytes(record: dict[str, Any], registry: dict[str, Any]) -> None:
    data = json.dumps(RECEIPT_A.to_dict(), indent=2, sort_keys=True).encode()
    record["metadata"]["receipts"][1] = _by(SITE2, RECEIPT_A, data)


def _signed_with_party_key(record: dict[str, Any], registry: dict[str, Any]) -> None:
    signature = PARTY_KEY.sign(RECEIPT_A.canonical_bytes())
    record["metadata"]["receipts"][1] = _sign(RECEIPT_A, signature)


CASES: dict[str, tuple[Change, str]] = {
    "another-result": (_another_result, "no receipt for"),
    "another-image": (_another_image, "names image"),
    "input-of-another-image": (_input_of_another_image, "names image"),
    "input-signed-by-another-site": (_input_signed_by_another_site, "does not verify"),
    "certificate-of-another-site": (_certificate_of_another_site, "was issued to"),
    "time-not-canonical": (_time_not_canonical, "canonical form"),
    "inputs-out-of-order": (_inputs_out_of_order, "canonical form"),
    "signed-over-other-bytes": (_signed_over_other_bytes, "does not verify"),
    "signed-with-party-key": (_signed_with_party_key, "does not verify"),
}


def _verify(tmp_path: Path, record: dict[str, Any], registry: dict[str, Any]) -> tuple[int, str]:
    (tmp_path / "result.json").write_text(json.dumps(record, indent=2))
    (tmp_path / "registry.json").write_text(json.dumps(registry, indent=2))
    arguments = ["verify", str(tmp_path / "result.json")]
    arguments += ["--registry", str(tmp_path / "registry.json"), "--json"]
    outcome = CliRunner().invoke(results_group, arguments, catch_exceptions=False)
    return outcome.exit_code, outcome.output


def test_the_sound_chain_verifies_offline(tmp_path: Path) -> None:
    """The control: both receipts verify with the registry's records alone."""
    code, output = _verify(tmp_path, *_files())
    assert code == 0, output
    assert json.loads(output)["verified"] is True


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_forged_or_misplaced_receipt_does_not_verify_offline(tmp_path: Path, case: str) -> None:
    """Another result's or image's receipt, a chain mixing sites, non-canonical JSON and
    the party's key: each exits 1, naming why."""
    record, registry = _files()
    change, why = CASES[case]
    change(record, registry)
    code, output = _verify(tmp_path, record, registry)
    assert code == 1, output
    report = json.loads(output)
    assert report["verified"] is False and why in report["reason"], report


def test_registry_records_naming_two_certificates_for_one_site_are_refused(
    tmp_path: Path,
) -> None:
    """Records listing a site twice, with different certificates, cannot be believed:
    exit 2, before any receipt is looked at."""
    record, registry = _files()
    site2 = registry["sites"][1]
    registry["sites"].append({**site2, "tls_cert_pem": registry["sites"][0]["tls_cert_pem"]})
    code, output = _verify(tmp_path, record, registry)
    assert code == 2, output
    assert "two different certificates" in output
