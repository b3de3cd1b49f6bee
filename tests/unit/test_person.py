"""People in the pure core: how a person is named, which jobs they see, and how the audit
record hash covers the acting user while records from before keep their hashes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from tests.unit.test_prov import STATUS

from mahiru.errors import InvalidInput
from mahiru.model.audit import AuditEntry, record_hash
from mahiru.model.identifiers import PartyId
from mahiru.model.jobs import JobStatus
from mahiru.model.people import Person
from mahiru.model.prov import job_provenance

P1 = PartyId.parse("party:p1.org:p1")
P2 = PartyId.parse("party:p2.org:p2")
AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ENTRY = AuditEntry(
    "job",
    "state",
    "planned",
    actor="site:p1.org:site",
    party="party:p1.org:p1",
    job="a" * 32,
    details={"from": None},
)


@pytest.mark.parametrize("name", ["alice", "alice@example.org", "a.b+c-d_e"])
def test_a_person_s_text_form_round_trips(name: str) -> None:
    """`name@party` parses back to the same person, also when the name holds an `@`."""
    person = Person(name, P1)
    assert str(person) == f"{name}@party:p1.org:p1"
    assert Person.parse(str(person)) == person


@pytest.mark.parametrize("text", ["", "alice", "@party:p1.org:p1", "alice@p1", "alice@party:x"])
def test_text_that_names_no_person_is_refused(text: str) -> None:
    """A missing name, a missing `@` or a malformed party is InvalidInput."""
    with pytest.raises(InvalidInput):
        Person.parse(text)


def test_a_plain_user_sees_their_own_jobs_and_an_admin_the_party_s() -> None:
    """Own jobs for plain users; every job of the party (also one of unknown submitter) for
    admins; never another party's."""
    alice, bob = Person("alice", P1), Person("bob", P1)
    admin = Person("admin", P1, admin=True)
    assert alice.sees_job(P1, str(alice))
    assert not alice.sees_job(P1, str(bob)) and not alice.sees_job(P1, None)
    assert admin.sees_job(P1, str(bob)) and admin.sees_job(P1, None)
    stranger = Person("alice", P2, admin=True)
    assert not stranger.sees_job(P1, str(alice)) and not stranger.sees_job(P1, None)
    assert alice.jobs_submitted_by() == str(alice) and admin.jobs_submitted_by() is None


def test_the_record_hash_covers_the_user_and_a_record_without_one_keeps_its_old_hash() -> None:
    """Adding, changing or removing the user changes the hash; without a user the hash is the
    one the code before users computed (a golden vector: it must never change)."""
    plain = record_hash(7, AT, ENTRY, "f" * 64)
    assert plain == "aaac65c5b95d0b446090b67741c08ee78e441ba6601d4c6b312b84b2da3ad1cf"
    alice = record_hash(7, AT, replace(ENTRY, user="alice@party:p1.org:p1"), "f" * 64)
    bob = record_hash(7, AT, replace(ENTRY, user="bob@party:p1.org:p1"), "f" * 64)
    assert len({plain, alice, bob}) == 3


def test_a_job_s_submitter_must_be_a_user_of_its_party() -> None:
    """`submitted_by` names a person of the job's submitting party, and round-trips."""
    status = replace(STATUS, submitted_by="alice@party:p1.org:p1")
    assert JobStatus.from_dict(status.to_dict()) == status
    for wrong in ("alice@party:p2.org:p2", "alice", ""):
        with pytest.raises(InvalidInput):
            replace(STATUS, submitted_by=wrong)


def test_provenance_names_the_person_who_submitted_the_job() -> None:
    """A `prov:Person` associated with the job, acting on behalf of the party; none if the
    job does not know its submitter."""
    status = replace(STATUS, submitted_by="alice@party:p1.org:p1")
    doc = job_provenance(status, [], {})
    person = "mahiru:user:alice@party:p1.org:p1"
    assert doc["agent"][person] == {"prov:type": "prov:Person", "prov:label": "submitted by"}
    assert {
        "prov:delegate": person,
        "prov:responsible": "mahiru:party:p1.org:p1",
    } in doc["actedOnBehalfOf"].values()
    assert {"prov:activity": "mahiru:job:job1", "prov:agent": person} in doc[
        "wasAssociatedWith"
    ].values()
    assert not any("user:" in agent for agent in job_provenance(STATUS, [], {})["agent"])


def test_reviewers_and_admins_review_and_a_reviewer_is_no_admin() -> None:
    """`reviews` holds for both roles; a reviewer sees only their own jobs, like a plain
    user; the text form carries no role, so a parsed person is a plain user."""
    reviewer = Person("rita", P1, reviewer=True)
    assert reviewer.reviews and Person("root", P1, admin=True).reviews
    assert not Person("bob", P1).reviews
    assert not reviewer.admin and reviewer.jobs_submitted_by() == str(reviewer)
    assert not reviewer.sees_job(P1, "someone-else@party:p1.org:p1")
    assert Person.parse(str(reviewer)) == Person("rita", P1)
    with pytest.raises(InvalidInput, match="one role"):
        Person("both", P1, admin=True, reviewer=True)
