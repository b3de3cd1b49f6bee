"""The people who act at a site: a user of a party, as their certificate names them.

A site's audit log and its jobs name a person by `Person.__str__`
(`alice@party:example.org:p1`): the user name and party of their certificate,
which together name one person of the network (a party certifies its own users).

Which of its party's jobs a person sees is decided here, once (`sees_job`): a
plain user sees and acts on the jobs they submitted; an admin sees every job
of the party (docs/security.md, "Every act tied to a person"). Who may see and decide
the reviews of results their party is to review is decided here too (`reviews`): admins
and reviewers; a reviewer has no other power of an admin's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import PartyId


@dataclass(frozen=True, slots=True)
class Person:
    """A user `name` of `party`; `admin` or `reviewer` if their certificate gives them that
    role (one role each: not both)."""

    name: str
    party: PartyId
    admin: bool = False
    reviewer: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("a person needs a user name", {"party": str(self.party)})
        if self.admin and self.reviewer:
            raise InvalidInput(
                f"{self} has one role: admin or reviewer, not both", {"user": str(self)}
            )

    def __str__(self) -> str:
        return f"{self.name}@{self.party}"

    @classmethod
    def parse(cls, text: str) -> Person:
        """The person named `text` (`name@party:<namespace>:<name>`); InvalidInput if it is not one.

        The role is not part of the text form: a parsed person is a plain user.
        """
        name, at, party = text.rpartition("@")
        if not at or not name:
            raise InvalidInput(
                f"not a person: {text!r} (expected <user>@party:<namespace>:<name>)",
                {"user": text},
            )
        return cls(name, PartyId.parse(party))

    def sees_job(self, submitter: PartyId, submitted_by: str | None) -> bool:
        """Whether this person may see (and cancel, and fetch the outputs of) a job.

        Only jobs of their own party; of those, a plain user only the ones they
        submitted, an admin all of them (also those submitted before jobs
        recorded their submitting user, whose `submitted_by` is None).
        """
        if submitter != self.party:
            return False
        return self.admin or submitted_by == str(self)

    @property
    def reviews(self) -> bool:
        """Whether this person may see and decide their party's reviews (which reviews
        those are, the policy says): reviewers and admins."""
        return self.admin or self.reviewer

    def jobs_submitted_by(self) -> str | None:
        """The `submitted_by` of the party's jobs this person sees (None: all of them)."""
        return None if self.admin else str(self)
