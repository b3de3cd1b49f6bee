"""Who may see and decide a site's reviews: the site's policy says, through its view.

A review names the rule that asked for it (`Review.rule_id`) and the reviewer that rule
names. Deciding one is an act, so it is decided by the engine (`may_review`) through
`PolicyView.decide`, and audited; the rule is looked up by id among the rules in force,
so once it is revoked nobody may decide its reviews. Which reviews a party is shown is a
question that only reads: those whose reviewer is the party or a party category it is
in, answered unaudited by a `PolicyReader`.
"""

from __future__ import annotations

from mahiru.model.identifiers import PartyId
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import ReleaseReviewedBy
from mahiru.services.site.policy_view import Concerning, Evaluate, PolicyView

#: The `Concerning.action` of a decision whether a party may decide a review.
DECIDE_ACTION = "decide review"


def reviewing(policy: PolicyView, party: PartyId, rule_id: str) -> Evaluate:
    """The decision whether `party` may review under the rule `rule_id`, for
    `PolicyView.decide`: the engine's `may_review` if the rule is a ReleaseReviewedBy in
    force, and a denial saying nobody may otherwise (it was revoked, or never known)."""

    def evaluate(engine: PolicyEngine) -> Decision:
        rule = policy.rule(rule_id)  # looked up again after a refresh
        if not isinstance(rule, ReleaseReviewedBy):
            return Decision(
                False,
                str(party),
                "review",
                f"releases under rule {rule_id}",
                note=(
                    f"rule {rule_id} is not in force here (it was revoked, or is no"
                    " ReleaseReviewedBy rule this site knows), so nobody may decide the"
                    " reviews it asked for"
                ),
            )
        return engine.may_review(party, rule)

    return evaluate


class PolicyReviewers:
    """The site's policy as the review queue asks it: who may decide (audited), and which
    reviewer names a party answers to (unaudited, to filter what it is shown)."""

    def __init__(self, policy: PolicyView) -> None:
        self._policy = policy

    def __call__(self, party: PartyId, rule_id: str) -> Decision:
        """May `party` decide reviews that rule `rule_id` asked for (a `MayReview`); the
        decision is audited."""
        about = Concerning(DECIDE_ACTION, str(party), party=str(party), asset=None)
        return self._policy.decide(reviewing(self._policy, party, rule_id), about)

    def names_of(self, party: PartyId) -> frozenset[str]:
        """The reviewers `party` answers for: itself and every party category it is in."""
        reader = self._policy.reader()  # a filter on what is shown, not an act: unaudited
        return frozenset(str(name) for name in reader.party_and_categories(party))
