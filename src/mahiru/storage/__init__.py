"""Persistent storage: the database (SQLAlchemy + Alembic) and content-addressed blobs.

This is an adapter layer: it imports the model and policy packages, never the
reverse. Services get a `Database` from `create_database` and build the
repositories they need on top of it.
"""

from mahiru.storage.assets import AssetRepository
from mahiru.storage.blobs import BlobInfo, BlobStore, BlobWriter
from mahiru.storage.db import Database, create_database
from mahiru.storage.jobs import JobRepository
from mahiru.storage.records import (
    AssetRecord,
    ChangeAction,
    ChangeBatch,
    PartyRecord,
    RegistryChange,
    RejectedRule,
    RuleChange,
    SiteEndpoints,
    SiteRecord,
)
from mahiru.storage.registry import RegistryRepository
from mahiru.storage.replicas import REGISTRY_SOURCE, ReplicaRepository
from mahiru.storage.rules import RuleRepository

__all__ = [
    "REGISTRY_SOURCE",
    "AssetRecord",
    "AssetRepository",
    "BlobInfo",
    "BlobStore",
    "BlobWriter",
    "ChangeAction",
    "ChangeBatch",
    "Database",
    "JobRepository",
    "PartyRecord",
    "RegistryChange",
    "RegistryRepository",
    "RejectedRule",
    "ReplicaRepository",
    "RuleChange",
    "RuleRepository",
    "SiteEndpoints",
    "SiteRecord",
    "create_database",
]
