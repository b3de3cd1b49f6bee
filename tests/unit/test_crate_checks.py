"""Checking a crate offline: every file named is there, every chain verifies, and every
image has the digest a verified receipt signs for it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.test_crate_builder import CHAIN, KEYS, OUTPUT_IMAGE, _source

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.crates import CrateOutput, IncludedImage, build_crate
from mahiru.model.crates.checks import check_crate
from mahiru.model.identifiers import ResultId
from mahiru.model.receipts import ReceiptChain, SignedReceipt, verify_chain
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key

CERTIFICATES = {str(site): pki.certificate_pem(k.certificate) for site, k in KEYS.items()}
IMAGE = b"x" * 1234


def _verified(result: ResultId, digest: str, chain: ReceiptChain) -> list[str]:
    return verify_chain(result, digest, chain, SiteSignatures(lambda s: CERTIFICATES.get(str(s))))


def _files(
    **changes: bytes | None,
) -> tuple[Any, Callable[[str], str | None], Callable[[str], Any]]:
    """A crate of the builder's job whose output image is IMAGE (its receipt signs the
    image's real digest), as metadata and readers, with some files changed (None: gone)."""
    digest = hashlib.sha256(IMAGE).hexdigest()
    image = IncludedImage(OUTPUT_IMAGE.stored, digest, len(IMAGE))
    assert isinstance(OUTPUT_IMAGE.stored, ResultId)
    output = CrateOutput("result", OUTPUT_IMAGE.stored, _resigned(digest), image)
    crate = build_crate(_source(outputs=[output]))
    files: dict[str, bytes | None] = {**crate.documents, image.path: IMAGE}
    files.update(changes)

    def digest_of(path: str) -> str | None:
        data = files.get(path)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def load(path: str) -> Any:
        data = files.get(path)
        assert data is not None
        return json.loads(data)

    return crate.metadata, digest_of, load


def _resigned(digest: str) -> ReceiptChain:
    """The builder's chain with the output's receipt naming image `digest`, signed again."""
    first, *rest = CHAIN.receipts
    receipt = replace(first.receipt, digest=digest)
    signature = sign_with_tls_key(KEYS[receipt.site].private_key, receipt.canonical_bytes())
    return ReceiptChain((SignedReceipt(receipt, signature), *rest))


def test_a_sound_crate_verifies_its_chain_and_its_output() -> None:
    """Both receipts verify; the output file has the digest the output's receipt signs."""
    metadata, digest_of, load = _files()
    lines = check_crate(metadata, digest_of, load, _verified)
    assert any(line.startswith("receipts/result.json: result:") for line in lines)
    assert any(
        line.startswith(f"outputs/{OUTPUT_IMAGE.stored.digest}.tar: sha256:") for line in lines
    )


def test_one_byte_changed_in_the_output_fails_naming_the_file() -> None:
    """Its digest is no longer the one the receipt signs."""
    changed = bytearray(IMAGE)
    changed[100] ^= 1
    path = f"outputs/{OUTPUT_IMAGE.stored.digest}.tar"
    metadata, digest_of, load = _files(**{path: bytes(changed)})
    with pytest.raises(InvalidInput, match="the receipts sign") as failed:
        check_crate(metadata, digest_of, load, _verified)
    assert path in failed.value.message


def test_a_removed_receipt_file_fails_as_missing() -> None:
    """The metadata names it: a crate with a file gone is not the crate that was made."""
    metadata, digest_of, load = _files(**{"receipts/result.json": None})
    with pytest.raises(InvalidInput, match=re.escape("receipts/result.json is named by the crate")):
        check_crate(metadata, digest_of, load, _verified)


def test_a_receipt_removed_from_the_metadata_too_leaves_the_output_unvouched() -> None:
    """No verified receipt names the output's digest: the output is refused."""
    metadata, digest_of, load = _files(**{"receipts/result.json": None})
    for entity in metadata["@graph"]:
        if entity["@id"] == "./":
            entity["hasPart"] = [p for p in entity["hasPart"] if p["@id"] != "receipts/result.json"]
    with pytest.raises(InvalidInput, match="no verified receipt in the crate signs its digest"):
        check_crate(metadata, digest_of, load, _verified)


def test_a_changed_receipt_fails_its_signature() -> None:
    """The prepare step's receipt, changed after site2 signed it."""
    metadata, digest_of, load = _files()
    record = load("receipts/result.json")
    record["metadata"]["receipts"][1]["step"] = "other"

    def tampered(path: str) -> Any:
        return record if path == "receipts/result.json" else load(path)

    with pytest.raises(InvalidSignature):
        check_crate(metadata, digest_of, tampered, _verified)


def test_a_file_that_is_no_crate_is_refused() -> None:
    """Metadata without a graph is not taken for an empty crate."""
    with pytest.raises(InvalidInput, match="not an RO-Crate"):
        check_crate({"hello": 1}, lambda _: None, lambda _: None, _verified)


def test_an_image_whose_id_is_struck_from_the_metadata_is_refused() -> None:
    """Taking the output's `identifier` away does not take it out of the check."""
    path = f"outputs/{OUTPUT_IMAGE.stored.digest}.tar"
    metadata, digest_of, load = _files(**{path: b"anything at all"})
    for entity in metadata["@graph"]:
        if entity["@id"] == path:
            del entity["identifier"]
    with pytest.raises(InvalidInput, match="names no Mahiru id"):
        check_crate(metadata, digest_of, load, _verified)


def test_a_file_the_metadata_does_not_list_is_refused() -> None:
    """Nothing rides along in the zip unchecked."""
    metadata, digest_of, load = _files()
    present = ["ro-crate-metadata.json", "workflow.json", "outputs/extra.tar"]
    with pytest.raises(InvalidInput, match=re.escape("outputs/extra.tar is in the crate but")):
        check_crate(metadata, digest_of, load, _verified, present)
