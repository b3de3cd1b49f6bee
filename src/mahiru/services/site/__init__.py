"""The site service: assets, rules, replication, the site's view of the policy, and the
review of results before they leave.

`SiteServices` holds them together, on one database and blob store (the
replication parts as one `Replication`; the audit and transfer logs and the
review queue as `SiteOversight`), as the site's composition root
(`mahiru.bootstrap`) wires them;
the HTTP layer (`mahiru.api.site_app`) serves them.
"""

from mahiru.policy.changes import PeerRuleBatch, UnreadableRuleChange
from mahiru.services.site.assets import AssetStore, ImageFile
from mahiru.services.site.peers import RegisteredSites
from mahiru.services.site.policy_view import PolicyView
from mahiru.services.site.replication import (
    RegistryFeed,
    Replicator,
    RuleFeed,
    RuleFeedFactory,
    SourceStatus,
)
from mahiru.services.site.reviewers import PolicyReviewers
from mahiru.services.site.reviews import MayReview, ReviewerNames, ReviewQueue, nobody_reviews
from mahiru.services.site.rules import RuleOutcome, RuleService
from mahiru.services.site.site import Replication, SiteOversight, SiteServices, SiteStatus
from mahiru.services.site.validation import KeyRing, Rejection

__all__ = [
    "AssetStore",
    "ImageFile",
    "KeyRing",
    "MayReview",
    "PeerRuleBatch",
    "PolicyReviewers",
    "PolicyView",
    "RegisteredSites",
    "RegistryFeed",
    "Rejection",
    "Replication",
    "Replicator",
    "ReviewQueue",
    "ReviewerNames",
    "RuleFeed",
    "RuleFeedFactory",
    "RuleOutcome",
    "RuleService",
    "SiteOversight",
    "SiteServices",
    "SiteStatus",
    "SourceStatus",
    "UnreadableRuleChange",
    "nobody_reviews",
]
