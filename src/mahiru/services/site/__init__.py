"""The site service: assets, rules, replication and the site's view of the policy.

`SiteServices` holds them together, on one database and blob store, as the
site's composition root (`mahiru.bootstrap`) wires them; the HTTP layer
(`mahiru.api.site_app`) serves them.
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
from mahiru.services.site.rules import RuleOutcome, RuleService
from mahiru.services.site.site import SiteServices, SiteStatus
from mahiru.services.site.validation import KeyRing, Rejection

__all__ = [
    "AssetStore",
    "ImageFile",
    "KeyRing",
    "PeerRuleBatch",
    "PolicyView",
    "RegisteredSites",
    "RegistryFeed",
    "Rejection",
    "Replicator",
    "RuleFeed",
    "RuleFeedFactory",
    "RuleOutcome",
    "RuleService",
    "SiteServices",
    "SiteStatus",
    "SourceStatus",
    "UnreadableRuleChange",
]
