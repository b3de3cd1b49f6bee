"""The registry's parties and sites, with a change log for incremental replication.

Used by the registry service. Checking the signatures on registrations is
the service's job; this repository keeps the data consistent: one owner per
namespace, sites only of registered parties, no party removed while it still
owns or administers a site.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, NotFound
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registry import (
    ChangeAction,
    ChangeBatch,
    PartyRecord,
    RegistryChange,
    SiteRecord,
)
from mahiru.storage import changelog
from mahiru.storage.db import Database
from mahiru.storage.directory import Directory, party_from_row, site_from_row
from mahiru.storage.schema import REGISTRY_LOG, parties, registry_changes, sites


class RegistryRepository(Directory):
    """Parties and sites of the network, and every change made to them, versioned.

    The queries (`parties`, `party`, `party_for_namespace`, `sites`, `site`)
    are the `Directory`'s, on the registry's own tables.
    """

    def __init__(self, database: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(database, parties, sites)
        self._db = database
        self._clock = clock

    # --- changes -----------------------------------------------------------

    def put_party(self, party: PartyRecord) -> int | None:
        """Add a party or update its keys; return the new version, or None if unchanged.

        Raises Conflict if another party owns the namespace, or if the party
        is registered with a different namespace (a namespace never moves:
        rules signed for it would change meaning).
        """
        with self._db.transaction() as session:
            current = changelog.begin_change(session, REGISTRY_LOG)
            existing = _party_row(session, party.id)
            if existing is not None:
                if existing.namespace != party.namespace:
                    raise Conflict(
                        f"{party.id} owns namespace {existing.namespace!r}; its namespace cannot"
                        f" change to {party.namespace!r} (remove and register it again)",
                        {"party": str(party.id), "namespace": existing.namespace},
                    )
                if party_from_row(existing) == party:
                    return None
                values = party.to_dict()
                session.execute(update(parties).where(parties.c.id == str(party.id)).values(values))
                action = ChangeAction.UPDATED
            else:
                owner = session.execute(
                    select(parties.c.id).where(parties.c.namespace == party.namespace)
                ).scalar_one_or_none()
                if owner is not None:
                    raise Conflict(
                        f"namespace {party.namespace!r} is already owned by {owner}",
                        {"namespace": party.namespace, "owner": owner},
                    )
                session.execute(insert(parties).values(party.to_dict()))
                action = ChangeAction.ADDED
            return self._log(session, current, action, party.id, party.to_dict())

    def remove_party(self, party_id: PartyId) -> int:
        """Remove a party; return the new version.

        Raises NotFound if it is not registered, Conflict if it still owns or
        administers sites (remove those first).
        """
        with self._db.transaction() as session:
            current = changelog.begin_change(session, REGISTRY_LOG)
            if _party_row(session, party_id) is None:
                raise NotFound(f"{party_id} is not registered", {"party": str(party_id)})
            text = str(party_id)
            dependent = (
                session.execute(
                    select(sites.c.id)
                    .where(or_(sites.c.owner == text, sites.c.admin == text))
                    .order_by(sites.c.id)
                )
                .scalars()
                .all()
            )
            if dependent:
                raise Conflict(
                    f"{party_id} still owns or administers {', '.join(dependent)};"
                    " remove those sites first",
                    {"party": text, "sites": list(dependent)},
                )
            session.execute(delete(parties).where(parties.c.id == text))
            return self._log(session, current, ChangeAction.REMOVED, party_id, None)

    def put_site(self, site: SiteRecord) -> int | None:
        """Add or update a site; return the new version, or None if unchanged.

        Raises NotFound if its owner or admin party is not registered.
        """
        with self._db.transaction() as session:
            current = changelog.begin_change(session, REGISTRY_LOG)
            for role, party_id in (("owner", site.owner), ("admin", site.admin)):
                if _party_row(session, party_id) is None:
                    raise NotFound(
                        f"{site.id} names {role} {party_id}, which is not registered",
                        {"site": str(site.id), role: str(party_id)},
                    )
            existing = _site_row(session, site.id)
            values = site.to_dict()
            if existing is None:
                session.execute(insert(sites).values(values))
                action = ChangeAction.ADDED
            elif site_from_row(existing) == site:
                return None
            else:
                session.execute(update(sites).where(sites.c.id == str(site.id)).values(values))
                action = ChangeAction.UPDATED
            return self._log(session, current, action, site.id, site.to_dict())

    def remove_site(self, site_id: SiteId) -> int:
        """Remove a site; return the new version. Raises NotFound if it is not registered."""
        with self._db.transaction() as session:
            current = changelog.begin_change(session, REGISTRY_LOG)
            if _site_row(session, site_id) is None:
                raise NotFound(f"{site_id} is not registered", {"site": str(site_id)})
            session.execute(delete(sites).where(sites.c.id == str(site_id)))
            return self._log(session, current, ChangeAction.REMOVED, site_id, None)

    def _log(
        self,
        session: Session,
        current: int,
        action: ChangeAction,
        subject: PartyId | SiteId,
        record: dict[str, Any] | None,
    ) -> int:
        version = changelog.next_version(session, REGISTRY_LOG, current)
        session.execute(
            insert(registry_changes).values(
                version=version,
                action=action.value,
                subject=str(subject),
                record=record,
                at=self._clock.now(),
            )
        )
        return version

    # --- queries -----------------------------------------------------------

    def version(self) -> int:
        """The version of the newest change (0 for an empty registry)."""
        with self._db.read() as session:
            return changelog.current_version(session, REGISTRY_LOG)

    def version_now(self) -> int | None:
        """The version of the newest change if it can be read at once, without a session
        (a local SQLite file: `changelog.current_version_now`); else None."""
        return changelog.current_version_now(self._db, REGISTRY_LOG)

    def changes_since(
        self, version: int, *, limit: int | None = None
    ) -> ChangeBatch[RegistryChange]:
        """The changes after `version`, oldest first, and the version to continue from.

        With `limit`, at most that many changes are returned and the version
        is that of the last one; ask again until no changes come back.
        """
        return changelog.changes_since(
            self._db, REGISTRY_LOG, registry_changes, version, limit, _registry_change_from_row
        )


def _registry_change_from_row(row: Row[Any]) -> RegistryChange:
    """Rebuild a change-log entry from its stored row."""
    data = row._mapping
    action = ChangeAction(data["action"])
    subject_text = data["subject"]
    subject: PartyId | SiteId
    record: PartyRecord | SiteRecord | None = None
    if subject_text.startswith("site:"):
        subject = SiteId.parse(subject_text)
        if data["record"] is not None:
            record = SiteRecord.from_dict(data["record"])
    else:
        subject = PartyId.parse(subject_text)
        if data["record"] is not None:
            record = PartyRecord.from_dict(data["record"])
    return RegistryChange(data["version"], action, subject, record, data["at"])


def _party_row(session: Session, party_id: PartyId) -> Row[Any] | None:
    return session.execute(select(parties).where(parties.c.id == str(party_id))).one_or_none()


def _site_row(session: Session, site_id: SiteId) -> Row[Any] | None:
    return session.execute(select(sites).where(sites.c.id == str(site_id))).one_or_none()
