"""The internal API of a site, under `/internal`: for the users of the site's owner party.

Every endpoint needs a certificate from the owner's user CA; those that
change something (assets, rules) need the admin role, and the reviews the reviewer
(or admin) role.
"""

from mahiru.api.routes.site.internal import (
    assets,
    audit,
    jobs,
    metrics,
    policy,
    reviews,
    rules,
    status,
    tes,
)

__all__ = ["assets", "audit", "jobs", "metrics", "policy", "reviews", "rules", "status", "tes"]
