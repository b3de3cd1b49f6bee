"""Alembic migrations of the Mahiru database; run by `mahiru.storage.db.migrate`."""
