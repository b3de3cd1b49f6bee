"""The web dashboard of a site, under `/internal/ui/`: pages rendered on the server.

It is part of the internal API, so a browser gets in with a user certificate
of the site's owner party, exactly like the command line; each page shows
what that user may see through the API (the jobs they submitted and the
audit records of their acts and jobs; for an admin, every job of the party
and every record). Graphs are SVG drawn here (`mahiru.api.svg`); no script
runs in the page, and its one stylesheet is served from here, so the pages
need nothing their Content-Security-Policy forbids
(`mahiru.api.middleware.SECURITY_HEADERS`). The forms that change something
(cancelling a job; approving or rejecting a review) carry a token bound to
the user (for reviews: to the user's certificate) and to the job or review;
besides, the apps refuse every state change a browser sends for another web
site (`mahiru.api.middleware.CrossSiteRefusal`). Reviewers and admins also
see the Reviews pages (`reviews.py`). A job's page reloads itself (a meta refresh,
not a script) until the job ends; its outputs download as archives of their files
(`downloads.py`), through the egress gate like every image that leaves.
"""

from mahiru.api.routes.site.dashboard import (
    assets,
    audit,
    downloads,
    home,
    jobs,
    reviews,
    rules,
    status,
    why,
)

__all__ = ["assets", "audit", "downloads", "home", "jobs", "reviews", "rules", "status", "why"]
