"""How a site's policy view in one process follows rules written by its other processes.

With several processes (web workers beside a loops process), a rule stored or
revoked through one of them is told as a change only to that process's view.
Every rule write is also counted in counts all processes share
(`storage/write_counts.py`), and a view compares them before each decision:

- this site's own rules moved: it reads the site's rule log after the version
  its snapshot holds and applies those changes, at the cost of the change;
- peers' rules moved (a replication round, a source forgotten): it rebuilds.

Applying a change the snapshot already holds changes nothing
(`PolicySnapshot.changed`), so reading the log from a version a little too
early is harmless; reading it too late never happens, as the version is read
before what it is the version of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mahiru.model.registry import ChangeBatch
from mahiru.policy.changes import RuleChange
from mahiru.services.site.policy_snapshot import PolicySnapshot

__all__ = ["SharedRuleWrites", "caught_up"]

#: How many changes of the rule log are read at a time.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class SharedRuleWrites:
    """Where a view learns of rule writes made in any process of the site."""

    #: The counts of writes of (this site's own rules, peers' rules), by every process.
    counts: Callable[[], tuple[int, int]]
    #: The version of the newest change in this site's rule log.
    own_version: Callable[[], int]
    #: The changes in this site's rule log after a version, at most `PAGE`.
    own_changes: Callable[[int], ChangeBatch[RuleChange]]


def caught_up(
    snapshot: PolicySnapshot, since: int, changes: Callable[[int], ChangeBatch[RuleChange]]
) -> tuple[PolicySnapshot, int]:
    """`snapshot` with every change of the rule log after `since` applied, and the version
    of the last one (`changes` gives at most PAGE changes at a time)."""
    while True:
        batch = changes(since)
        if not batch.changes:
            return snapshot, since
        snapshot = snapshot.changed(
            [change.rule for change in batch.changes if change.rule is not None],
            [change.revocation for change in batch.changes if change.revocation is not None],
        )
        since = batch.version
        if len(batch.changes) < PAGE:  # the last page: no need to ask again
            return snapshot, since
