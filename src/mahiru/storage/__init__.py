"""Persistent storage: the database (SQLAlchemy + Alembic) and content-addressed blobs.

This is an adapter layer: it imports the model and policy packages, never the
reverse. The composition root opens a `Database` with `create_database` and
builds the repositories on it (`SiteRepositories.open` for a site); services
are handed the repositories they use.
"""

from mahiru.storage.assets import AssetRepository
from mahiru.storage.audit import AuditLog, AuditPage, AuditQuery
from mahiru.storage.blobs import BlobStore, BlobWriter
from mahiru.storage.db import Database, create_database
from mahiru.storage.jobs import JobRepository
from mahiru.storage.provenance import ProvenanceRepository
from mahiru.storage.registry import RegistryRepository
from mahiru.storage.replicas import REGISTRY_SOURCE, ReplicaRepository
from mahiru.storage.repositories import ResultRecords, SiteRepositories
from mahiru.storage.reviews import ReviewRepository
from mahiru.storage.rules import RuleRepository

__all__ = [
    "REGISTRY_SOURCE",
    "AssetRepository",
    "AuditLog",
    "AuditPage",
    "AuditQuery",
    "BlobStore",
    "BlobWriter",
    "Database",
    "JobRepository",
    "ProvenanceRepository",
    "RegistryRepository",
    "ReplicaRepository",
    "ResultRecords",
    "ReviewRepository",
    "RuleRepository",
    "SiteRepositories",
    "create_database",
]
