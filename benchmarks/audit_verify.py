"""Time to verify a site's audit chain: the whole walk against the walk from the checkpoint.

Usage: .venv/bin/python benchmarks/audit_verify.py [--records N] [--added K] [--quick]

Writes N records (default 10,000) to a fresh SQLite audit log, verifies the
whole chain once (which sets the checkpoint), adds K more (default 10), and
prints the time of a full walk and of a walk from the checkpoint, as the
dashboard's audit page and `GET /internal/audit/verify` now do on each load.
`--quick` writes 200 records (a smoke test).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.storage import AuditLog, create_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--added", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="200 records (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.records = 200
    with (
        tempfile.TemporaryDirectory() as folder,
        create_database(f"sqlite:///{Path(folder) / 'audit.db'}") as database,
    ):
        log = AuditLog(database)
        with database.transaction():
            for n in range(args.records):
                log.record(AuditEntry(AuditKind.JOB, "state", "running", details={"n": n}))
        log.verify()
        with database.transaction():
            for n in range(args.added):
                log.record(AuditEntry(AuditKind.JOB, "state", "done", details={"n": n}))
        start = time.perf_counter()
        partial = log.verify(full=False)
        partial_seconds = time.perf_counter() - start
        start = time.perf_counter()
        full = log.verify()
        full_seconds = time.perf_counter() - start
    assert partial.intact and full.intact
    print(f"full walk:            {full.records:>7} records in {full_seconds * 1000:8.1f} ms")
    print(f"from the checkpoint:  {partial.records:>7} records in {partial_seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
