"""The dashboard's rules page: this site's rules, its peers', and the rejected ones."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.pages import BASE, Dashboard
from mahiru.api.routes.site.dependencies import Services, User
from mahiru.storage import REGISTRY_SOURCE

router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("/rules")
def rules(caller: User, dashboard: Dashboard, services: Services) -> HTMLResponse:
    """Every rule in force here, with its signer and where it came from."""
    rows = [
        {
            "text": str(signed.rule),
            "signer": signed.rule.signer_namespace(),
            "source": "this site",
            "id": signed.rule_id,
        }
        for signed in services.rules.active()
    ]
    for source in services.replication.replica.sources():
        if source == REGISTRY_SOURCE:
            continue
        rows.extend(
            {
                "text": str(signed.rule),
                "signer": signed.rule.signer_namespace(),
                "source": source,
                "id": signed.rule_id,
            }
            for signed in services.rules.replicated(source)
        )
    return dashboard.render(
        "rules.html",
        caller,
        "Rules",
        "Rules",
        rules=rows,
        rejected=services.replication.replica.rejected_rules(),
    )
