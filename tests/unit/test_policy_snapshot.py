"""A site's policy snapshot changed rule by rule equals one built from every stored rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import World, jobs, worlds
from test_policy_incremental import every_decision

from mahiru.model.workflow import Job
from mahiru.policy.signing import Revocation, SignedRule, in_force
from mahiru.services.site.policy_snapshot import PolicySnapshot

#: Signatures are not checked here (the site checks them when rules arrive).
SIGNATURE = b"\x00" * 64

Change = tuple[list[SignedRule], list[Revocation]]


@st.composite
def histories(draw: st.DrawFn) -> tuple[World, Job, list[Change]]:
    """A world, a job, and changes: rules stored (again, or after their revocation) and
    revocations (of rules seen or not yet seen, some for the wrong namespace)."""
    world = draw(worlds())
    job = draw(jobs(world))
    signed = [SignedRule(rule, SIGNATURE) for rule in world.rules]
    if not signed:
        return world, job, []

    def revocation(rule: SignedRule, right_namespace: bool) -> Revocation:
        namespace = rule.rule.signer_namespace() if right_namespace else "other.example.org"
        return Revocation(rule.rule_id, namespace, SIGNATURE)

    revocations = st.builds(revocation, st.sampled_from(signed), st.booleans())
    change = st.tuples(
        st.lists(st.sampled_from(signed), max_size=4), st.lists(revocations, max_size=2)
    )
    return world, job, draw(st.lists(change, max_size=10))


@settings(max_examples=100, deadline=None)
@given(histories())
def test_a_changed_snapshot_equals_one_built_from_storage(
    case: tuple[World, Job, list[Change]],
) -> None:
    """Same rules in force, same version bumps, and every decision the same as a rebuild."""
    world, job, history = case
    stored: list[SignedRule] = []
    known: list[Revocation] = []
    snapshot = PolicySnapshot.built([], [], None)
    for added, revoked in history:
        stored.extend(added)
        known.extend(revoked)
        previous, before = snapshot, snapshot.engine.store.rules()
        snapshot = snapshot.changed(added, revoked)
        rebuilt = PolicySnapshot.built(in_force(stored, known), known, previous)
        assert sorted(snapshot.by_id) == sorted(rebuilt.by_id)
        assert snapshot.version == rebuilt.version  # bumped exactly when the rules changed
        assert snapshot.engine.store.rules() == rebuilt.engine.store.rules()
        assert every_decision(snapshot.engine, world, job) == every_decision(
            rebuilt.engine, world, job
        )
        assert previous.engine.store.rules() == before  # decisions still using it see no change
