"""Alembic revisions, oldest first; each file is a frozen snapshot of one change."""
