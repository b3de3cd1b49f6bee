"""Reading parties and sites: the registry's own tables and a site's replica of them alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Row

from mahiru.errors import NotFound
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registry import PartyRecord, SiteEndpoints, SiteRecord
from mahiru.storage.db import Database


class Directory:
    """Queries on one pair of party and site tables of the same shape.

    The registry reads its `parties` and `sites`; each site reads its
    replicas of them. Both answer the same questions the same way.
    """

    def __init__(self, database: Database, parties: Table, sites: Table) -> None:
        self._db = database
        self._parties = parties
        self._sites = sites

    def parties(self) -> list[PartyRecord]:
        """Every party, by id."""
        with self._db.read() as session:
            rows = session.execute(select(self._parties).order_by(self._parties.c.id)).all()
        return [party_from_row(row) for row in rows]

    def party(self, party_id: PartyId) -> PartyRecord:
        """One party; NotFound if it is not registered."""
        with self._db.read() as session:
            row = session.execute(
                select(self._parties).where(self._parties.c.id == str(party_id))
            ).one_or_none()
        if row is None:
            raise NotFound(f"{party_id} is not registered", {"party": str(party_id)})
        return party_from_row(row)

    def party_for_namespace(self, namespace: str) -> PartyRecord:
        """The party owning `namespace`; NotFound if none does."""
        with self._db.read() as session:
            row = session.execute(
                select(self._parties)
                .where(self._parties.c.namespace == namespace)
                .order_by(self._parties.c.id)
                .limit(1)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no party owns namespace {namespace!r}", {"namespace": namespace})
        return party_from_row(row)

    def sites(self) -> list[SiteRecord]:
        """Every site, by id."""
        with self._db.read() as session:
            rows = session.execute(select(self._sites).order_by(self._sites.c.id)).all()
        return [site_from_row(row) for row in rows]

    def site(self, site_id: SiteId) -> SiteRecord:
        """One site; NotFound if it is not registered."""
        with self._db.read() as session:
            row = session.execute(
                select(self._sites).where(self._sites.c.id == str(site_id))
            ).one_or_none()
        if row is None:
            raise NotFound(f"{site_id} is not registered", {"site": str(site_id)})
        return site_from_row(row)


def party_from_row(row: Row[Any]) -> PartyRecord:
    """Rebuild a party from a row of `parties` or `replica_parties`."""
    data = row._mapping
    return PartyRecord(
        PartyId.parse(data["id"]), data["namespace"], data["public_key_pem"], data["user_ca_pem"]
    )


def site_from_row(row: Row[Any]) -> SiteRecord:
    """Rebuild a site from a row of `sites` or `replica_sites`."""
    data = row._mapping
    return SiteRecord(
        SiteId.parse(data["id"]),
        PartyId.parse(data["owner"]),
        PartyId.parse(data["admin"]),
        SiteEndpoints.from_dict(data["endpoints"]),
        data["tls_cert_pem"],
        bool(data["has_store"]),
        bool(data["has_runner"]),
    )
