"""The dashboard's Reviews pages: the reviews the caller's party is to decide, one review
with its result's files, each file shown safely, and the approve and reject forms.

Like the review API (`internal/reviews.py`) they are for reviewers and admins (others:
403), show only the reviews the caller's party answers for (another party's: 404, as an
id of nothing), and read the result's files only through the egress gate
(`Egress.to_reviewer`: decided, audited, recorded as a transfer). A file is never
served as something a browser would run: PNG, JPEG and GIF as images, everything else
as a download, under the dashboard's Content-Security-Policy; text (HTML and SVG
included) and tables are shown escaped in a page. The decision forms carry a token bound
to the review and to the caller's certificate (`DashboardPages.review_token`), besides
the check every state change passes (`CrossSiteRefusal`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from mahiru.api.routes.site.dashboard.pages import BASE, Dashboard
from mahiru.api.routes.site.dashboard.review_views import (
    IMAGE_TYPES,
    SHOWN_BYTES,
    context_of,
    file_kind,
    head_of,
    shown,
)
from mahiru.api.routes.site.dependencies import Jobs, Reviewer, Services
from mahiru.api.routes.site.internal.reviews import review_state
from mahiru.errors import Conflict, InvalidInput
from mahiru.model.reviews import Review

router = APIRouter(prefix=BASE, include_in_schema=False)

REVIEWS_PER_PAGE = 100
#: What the page says after a decision form was refused for something the reviewer can
#: mend; named by a code in the address, so no address can make the page say anything else.
PROBLEMS = {
    "reason": "Give a reason: it is kept in the audit log with your decision.",
    "override": "A check failed: approve only if you tick “release although a check failed”.",
    "decided": "The review was decided already; nothing was changed.",
}
_STATES = ("pending", "approved", "rejected", "all")


@router.get("/reviews")
def review_list(
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
    jobs: Jobs,
    state: str = "pending",
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """One page of the reviews the caller's party is to decide, newest first: the pending
    ones, or those in another state (`state`: approved, rejected or all)."""
    chosen = review_state(None if state == "all" else state)
    reviews, total = services.oversight.reviews.visible_to(
        caller.person, chosen, offset=(page - 1) * REVIEWS_PER_PAGE, limit=REVIEWS_PER_PAGE
    )
    return dashboard.render(
        "reviews.html",
        caller,
        "Reviews",
        "Reviews",
        reviews=[(review, context_of(review, jobs)) for review in reviews],
        total=total,
        state=state,
        states=_STATES,
        page=page,
        pages=max((total + REVIEWS_PER_PAGE - 1) // REVIEWS_PER_PAGE, 1),
    )


def _review(services: Services, caller: Reviewer, review_id: str) -> Review:
    return services.oversight.reviews.find_for(caller.person, review_id)


@router.get("/reviews/{review_id}")
def review_page(
    review_id: str,
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
    jobs: Jobs,
    problem: str | None = None,
) -> HTMLResponse:
    """One review: the job, its submitter, the inputs' owners, the checks, the result's
    files and, while it is pending, the approve and reject forms."""
    review = _review(services, caller, review_id)
    files = jobs.loops.review_exchange.listing(review, caller.person)
    return dashboard.render(
        "review.html",
        caller,
        "Reviews",
        f"Review {review.review_id}",
        review=review,
        context=context_of(review, jobs),
        files=[(f, file_kind(str(f["path"]))) for f in files],
        problem=PROBLEMS.get(problem or ""),
        token=dashboard.review_token(caller, review.review_id),
        quote=quote,
    )


@router.get("/reviews/{review_id}/files/{path:path}")
def file_page(
    review_id: str,
    path: str,
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
    jobs: Jobs,
) -> HTMLResponse:
    """One file of the result: text and tables shown escaped (their first SHOWN_BYTES),
    an image shown from `raw`, anything else offered as a download."""
    review = _review(services, caller, review_id)
    kind = file_kind(path)
    content = None
    if kind in ("text", "table"):
        size, chunks = jobs.loops.review_exchange.read(review, caller.person, path)
        content = shown(path, head_of(chunks, SHOWN_BYTES), size)
    return dashboard.render(
        "review_file.html",
        caller,
        "Reviews",
        f"/data/{path.strip('/')}",
        review=review,
        path=path.strip("/"),
        kind=kind,
        content=content,
        quote=quote,
    )


@router.get("/reviews/{review_id}/raw/{path:path}")
def raw_file(
    review_id: str, path: str, caller: Reviewer, services: Services, jobs: Jobs
) -> StreamingResponse:
    """The bytes of one file of the result: PNG, JPEG and GIF as those images (shown
    inline), everything else as an attachment of no type a browser would show or run."""
    review = _review(services, caller, review_id)
    size, chunks = jobs.loops.review_exchange.read(review, caller.person, path)
    name = path.strip("/").rsplit("/", 1)[-1]
    media = IMAGE_TYPES.get(f".{name.rsplit('.', 1)[-1].lower()}") if "." in name else None
    disposition = "inline" if media else "attachment"
    return StreamingResponse(
        chunks,
        media_type=media or "application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _form(request: Request) -> dict[str, str]:
    """The fields of a form-encoded body (the first value of each)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {name: values[0] for name, values in fields.items()}


@router.post("/reviews/{review_id}/approve")
async def approve(
    review_id: str,
    request: Request,
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
) -> RedirectResponse:
    """Approve the review from its page's form (with a reason; over a failed check only
    with `override` ticked), if the form's token is the one this caller was given."""
    return await _decide(review_id, request, caller, dashboard, services, approve=True)


@router.post("/reviews/{review_id}/reject")
async def reject(
    review_id: str,
    request: Request,
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
) -> RedirectResponse:
    """Reject the review from its page's form (with a reason), if the form's token is the
    one this caller was given."""
    return await _decide(review_id, request, caller, dashboard, services, approve=False)


async def _decide(
    review_id: str,
    request: Request,
    caller: Reviewer,
    dashboard: Dashboard,
    services: Services,
    *,
    approve: bool,
) -> RedirectResponse:
    form = await _form(request)
    # The token first, for the id as given: a form this dashboard did not make for this
    # caller learns nothing, not even whether the review exists.
    dashboard.check_review_token(caller, review_id, form.get("token", ""))
    review = _review(services, caller, review_id)
    page = f"{BASE}/reviews/{review.review_id}"
    reason = form.get("reason", "").strip()
    if not reason:
        return RedirectResponse(f"{page}?problem=reason", status_code=303)
    if review.state.decided:
        return RedirectResponse(f"{page}?problem=decided", status_code=303)
    queue = services.oversight.reviews
    try:
        if approve:
            override = form.get("override") == "on" and bool(review.failed_checks)
            queue.approve(review.review_id, caller.person, caller.party, reason, override=override)
        else:
            queue.reject(review.review_id, caller.person, caller.party, reason)
    except (Conflict, InvalidInput):
        # Decided meanwhile, or a check failed without override: the page says which.
        fresh = queue.find_for(caller.person, review.review_id)
        problem = "decided" if fresh.state.decided else "override"
        return RedirectResponse(f"{page}?problem={problem}", status_code=303)
    return RedirectResponse(page, status_code=303)
