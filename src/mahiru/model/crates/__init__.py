"""A job as a Workflow Run RO-Crate (Provenance Run Crate 0.5), and checking one.

Pure: `build_crate` is handed what the site knows of a job (its status and
steps, the owners of the sites that ran them, the receipt chains of its
outputs, which images go in, the PROV-JSON document) and writes the crate's
metadata and small documents; the site's edge writes them, with the images,
into a zip (`mahiru/crate_archives.py`). `check_crate` checks a crate offline:
its receipt chains, and every file in it against the digests they sign.
"""

from mahiru.model.crates.building import build_crate
from mahiru.model.crates.values import (
    METADATA_FILE,
    PROVENANCE_FILE,
    RECEIPTS_FORMAT,
    WORKFLOW_FILE,
    CrateOutput,
    CrateSource,
    IncludedImage,
    JobCrate,
    urn,
)

__all__ = [
    "METADATA_FILE",
    "PROVENANCE_FILE",
    "RECEIPTS_FORMAT",
    "WORKFLOW_FILE",
    "CrateOutput",
    "CrateSource",
    "IncludedImage",
    "JobCrate",
    "build_crate",
    "urn",
]
