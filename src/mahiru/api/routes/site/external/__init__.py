"""The external API of a site, under `/external`: for the other registered sites.

Every endpoint needs a network certificate naming a site in the registry
replica (with the registered key). Asset metadata and images are served only
if this site's own policy engine lets the calling site access the asset;
the requester's plan is never trusted. A site may hand over or cancel steps
only as the job's submitter's site, and see step states only of jobs it
takes part in. A result is served only if this site's policy, applied to how
the result was made, lets the caller have it. A review is offered only to a site of
its reviewer party, and its result's files go only to a site of a party that may
review under its rule.
"""

from mahiru.api.routes.site.external import assets, live, results, reviews, rules, steps

__all__ = ["assets", "live", "results", "reviews", "rules", "steps"]
