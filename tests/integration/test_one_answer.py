"""One answer for "not yours" and "not there", and the little a data's site hears of a job.

Every route of a site's two APIs that takes an id is called, over real mutual
TLS, with ids of things that exist but are not the caller's (made by other
parties and sites, stored without running anything) and with ids of nothing;
both must get the same status and body, the echoed id aside. The routes are
read from the app itself, so a new route with an id is covered, or this
fails naming it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import routing
from fastapi.routing import APIRoute
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, client_as, may_access, network

from mahiru.client.http import TlsIdentity
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.jobs import JobState, ResultProvenance, StepAssignment, StepState
from mahiru.model.serialization import job_digest, job_from_dict, job_to_dict
from mahiru.model.workflow import Job, Plan
from mahiru.storage import SiteRepositories
from mahiru.storage.tes_tasks import TaskFieldRepository, TaskFields

pytestmark = pytest.mark.integration

#: Routes whose ids are never hidden from their callers, and why.
NOTHING_HIDDEN = {
    "/internal/assets/{asset_id}": "a site's users see every asset stored there (the list)",
    "/internal/assets/{asset_id}/image": "a site's users see every asset stored there",
}
#: Path parameters that only qualify an id (the id before them decides the answer).
QUALIFIERS = {"name": "result", "path": "payload", "step": "compute"}


@dataclass
class World:
    """Three sites (jobs not running), and things of each party stored at p1's site."""

    net: Network
    #: Ids that exist at p1's site but are not the caller's, per API and parameter.
    not_yours: dict[tuple[str, str], list[str]]
    #: More ids, for one route only (a participant that is not the submitter, say).
    not_yours_at: dict[str, list[str]]
    #: The job p3 submitted at its own site, whose step at p3 reads p1's live data.
    live_job: tuple[str, Job]
    live_data: AssetId
    compute: AssetId


def _repositories(site: SiteServer) -> SiteRepositories:
    return site.site.storage.repositories


def _job(submitter: str, steps: dict[str, tuple[str, str]], compute: AssetId) -> Job:
    """A job of `submitter` whose step `name` reads input `steps[name][0]` = asset [1]."""
    return job_from_dict(
        {
            "submitter": submitter,
            "workflow": {
                "inputs": sorted({name for name, _ in steps.values()}),
                "outputs": {f"{step}_out": f"{step}.out" for step in steps},
                "steps": [
                    {
                        "name": step,
                        "compute_asset": str(compute),
                        "inputs": {"in": name},
                        "outputs": {"out": None},
                    }
                    for step, (name, _) in steps.items()
                ],
            },
            "inputs": {name: asset for name, asset in steps.values()},
        }
    )


def _new_id() -> str:
    return secrets.token_hex(16)


def _now() -> datetime:
    return datetime.now(UTC)


def _grant_body(job_id: str, job: Job, submitter_site: str, data: AssetId) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job": job_to_dict(job),
        "submitter_site": submitter_site,
        "step": "s",
        "input": "in",
        "asset": str(data),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """p1's site stores jobs, steps, a result's provenance, audit records and a live grant
    of p2's and p3's; p3's site a job reading p1's live data."""
    root = tmp_path_factory.mktemp("one-answer")
    with network(root, sqlite_urls(root)) as net:
        site1, site2, site3 = (net.sites[p] for p in ("p1", "p2", "p3"))
        for site in (site1, site3):
            site.stop()
            site.start(jobs=False)
        net.replicate_all()
        ns = site1.party.namespace
        live = AssetId.parse(f"asset:{ns}:live:{ns}:site")
        compute = AssetId.parse(f"asset:{ns}:compute:{ns}:site")
        secret = AssetId.parse(f"asset:{ns}:secret:{ns}:site")
        results = f"asset_collection:{ns}:results"
        with site1.admin() as admin:
            admin.upload_asset(
                Asset(live, AssetKind.DATA, {"live_access": True}),
                write_image(root / "live.tar", 2_000),
            )
            admin.upload_asset(Asset(compute, AssetKind.COMPUTE), write_image(root / "c.tar"))
            admin.upload_asset(Asset(secret, AssetKind.DATA), write_image(root / "s.tar"))
            for rule in (
                may_access(site3.id, str(live)),
                may_access(site3.id, str(compute)),
                may_access(site3.id, results),
                {"type": "ResultOfDataIn", "data": str(live), "compute": "*", "output": "*"}
                | {"collection": results},
                {"type": "ResultOfComputeIn", "data": "*", "compute": str(compute)}
                | {"output": "*", "collection": results},
            ):
                admin.add_rule(site1.party.sign(rule))
        s1, s2, s3 = (SiteId.parse(s.id) for s in (site1, site2, site3))
        p1, p3 = site1.party.id, site3.party.id
        repo1, repo3 = _repositories(site1).jobs, _repositories(site3).jobs
        data2 = f"asset:{site2.party.namespace}:data:{site2.party.namespace}:site"

        # At p1's site: p1's own job, all at p1 (nothing of p2's in it)...
        own = _new_id()
        own_job = _job(p1, {"s": ("x", str(live))}, compute)
        repo1.create_job(own, own_job, Plan({"s": s1}), s1, _now())
        # ...a job of p1 with a step at p2's site reading p2's data (p2 takes part)...
        shared = _new_id()
        shared_job = _job(p1, {"s": ("x", data2)}, compute)
        repo1.create_job(shared, shared_job, Plan({"s": s2}), s1, _now())
        # ...steps of a job of p3 handed over by p3's site...
        handed = _new_id()
        handed_job = _job(p3, {"s": ("x", str(live))}, compute)
        repo1.upsert_step_assignment(
            StepAssignment(handed, s3, s1, handed_job, Plan({"s": s1})), _now()
        )
        # ...and a job of p3 stored as submitted here (a user of p3's, as it were).
        foreign = _new_id()
        repo1.create_job(foreign, handed_job, Plan({"s": s1}), s1, _now())
        # ...and one of p3's submitted as a GA4GH TES task.
        task = _new_id()
        repo1.create_job(task, handed_job, Plan({"s": s1}), s1, _now())
        TaskFieldRepository(site1.site.storage.database).add(
            JobId(task), TaskFields(name="p3's task", tags={"Project": "p3"})
        )
        # A result of p1's job, recorded as made here; no rule lets p2 have it.
        [(ref, result)] = own_job.result_ids().items()
        _repositories(site1).results.provenance.add_provenance(
            ResultProvenance(result, own, ref.step, ref.output, own_job), _now()
        )

        # p3's site asks p1's for live access for its step, confirmed by p3's site.
        live_id = _new_id()
        live_job = _job(p3, {"s": ("x", str(live))}, compute)
        repo3.create_job(live_id, live_job, Plan({"s": s3}), s3, _now())
        with client_as(site3.identity, site1.external_url) as as_site3:
            granted = as_site3.post(
                "/live/grants", json=_grant_body(live_id, live_job, site3.id, live)
            )
        assert granted.status_code == 201, granted.text
        token = granted.json()["token"]

        with site1.admin() as admin:
            records = admin.audit_records(limit=500)["records"]
        about_others = [str(r["seq"]) for r in records if r["party"] != p1][:3]
        assert about_others
        # A review of a release at p1's site that p2 is to decide, not p1.
        others_review = site1.services.oversight.reviews.request(
            result, PartyId.parse(p3), "rule-of-p2", site2.party.id, own, "ab" * 32, ()
        )
        # One that p3 is to decide: p2's site may neither read its files nor decide it.
        p3s_review = site1.services.oversight.reviews.request(
            result, PartyId.parse(p1), "rule-of-p3", site3.party.id, own, "cd" * 32, ()
        )
        yield World(
            net,
            not_yours={
                ("internal", "job_id"): [handed, foreign],
                ("internal", "seq"): about_others,
                ("internal", "review_id"): [others_review.review_id],
                ("internal", "task_id"): [task, foreign, handed],
                ("external", "job_id"): [own, handed, foreign],
                ("external", "result_id"): [str(result)],
                ("external", "asset_id"): [str(secret), str(result)],
                ("external", "token"): [token],
                ("external", "review_id"): [p3s_review.review_id],
            },
            not_yours_at={
                "POST /external/jobs/{job_id}/cancel": [shared],
                "GET /external/jobs/{job_id}/readers": [shared],
            },
            live_job=(live_id, live_job),
            live_data=live,
            compute=compute,
        )


def _not_there(like: str, site: SiteServer) -> str:
    """An id of nothing, of the same kind as `like`."""
    ns = site.party.namespace
    if like.startswith("result:"):
        return "result:" + secrets.token_hex(32)
    if like.startswith("asset:"):
        return f"asset:{ns}:nothing{secrets.token_hex(4)}:{ns}:site"
    if like.isdigit():
        return str(987_654_321 + secrets.randbelow(1000))
    if re.fullmatch(r"[0-9a-f]{32}", like):
        return _new_id()
    return secrets.token_urlsafe(32)


def _shape(response: httpx.Response, given: str) -> tuple[int, Any]:
    """The status and the body, with the id the caller gave replaced by a placeholder."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text

    def blind(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: blind(item) for key, item in value.items()}
        if isinstance(value, list):
            return [blind(item) for item in value]
        if isinstance(value, str):
            return value.replace(given, "<id>")
        return "<id>" if str(value) == given else value

    return response.status_code, blind(body)


def _call(
    identity: TlsIdentity, site: SiteServer, method: str, route: APIRoute, value: str
) -> httpx.Response:
    """`route` with every id parameter `value` (and qualifiers fixed), minimal query and body."""
    path = route.path_format
    for key in re.findall(r"{(\w+)}", path):
        path = path.replace(f"{{{key}}}", quote(QUALIFIERS.get(key, value), safe=":"))
    queries = {
        q.alias: "0" * 64 for q in route.dependant.query_params if q.field_info.is_required()
    }
    body = {} if method in ("POST", "PUT") else None
    with client_as(identity, f"https://127.0.0.1:{site.port}") as client:
        return client.request(method, path, params=queries, json=body)


def test_not_yours_and_not_there_get_one_answer_on_every_route_with_an_id(world: World) -> None:
    """Each route of both APIs with an id answers an id of another party's or site's thing
    exactly as an id of nothing (status and body, the echoed id aside), and never 2xx."""
    net = world.net
    site = net.sites["p1"]
    assert site.app is not None
    callers = {"internal": site.party.user, "external": net.sites["p2"].identity}
    problems: list[str] = []
    walked: set[str] = set()
    for context in routing.iter_route_contexts(site.app.routes):
        route = context.route
        if not isinstance(route, APIRoute) or context.path in NOTHING_HIDDEN:
            continue
        params = [p for p in re.findall(r"{(\w+)", context.path) if p not in QUALIFIERS]
        if not params:
            continue
        api = context.path.split("/")[1]
        [param] = params
        # Reviews are for reviewers (a plain user is refused them all): asked as p1's admin.
        caller = site.party.admin if context.path.startswith("/internal/reviews") else None
        for method in sorted(set(context.methods) - {"HEAD"}):
            name = f"{method} {context.path}"
            yours_not = world.not_yours.get((api, param))
            if yours_not is None:
                problems.append(f"{name}: no id of another's {param} to try; add one")
                continue
            for value in yours_not + world.not_yours_at.get(name, []):
                fresh = _not_there(value, site)
                who = caller or callers[api]
                nothing = _shape(_call(who, site, method, route, fresh), fresh)
                if not 400 <= nothing[0] < 500 or "from a Mahiru client" in str(nothing):
                    # Refused before the route (the cross-site check) compares nothing.
                    problems.append(f"{name}: an id of nothing gets {nothing}")
                answer = _shape(_call(who, site, method, route, value), value)
                if answer != nothing:
                    problems.append(f"{name} with {value}: {answer}\n  nothing gets {nothing}")
            walked.add(name)
    assert not problems, "\n".join(problems)
    # Not vacuous: the routes of the issue are all walked.
    assert {
        "GET /external/jobs/{job_id}/steps",
        "POST /external/jobs/{job_id}/cancel",
        "GET /external/jobs/{job_id}/readers",
        "GET /external/results/{result_id}/image",
        "GET /external/assets/{asset_id}/image",
        "DELETE /external/live/{token}",
        "GET /internal/jobs/{job_id}/provenance",
        "GET /internal/jobs/{job_id}/steps/{step}/log",
        "GET /external/jobs/{job_id}/steps/{step}/log",
        "GET /internal/audit/{seq}",
        "POST /internal/ui/jobs/{job_id}/cancel",
        "GET /internal/reviews/{review_id}",
        "POST /internal/reviews/{review_id}/approve",
        "GET /internal/reviews/{review_id}/files/{path:path}",
        "GET /external/reviews/{review_id}/files",
        "POST /external/reviews/{review_id}/decision",
        "GET /internal/ga4gh/tes/v1/tasks/{task_id}",
        "POST /internal/ga4gh/tes/v1/tasks/{task_id}:cancel",
    } <= walked


def test_a_data_site_hears_only_which_steps_reading_its_data_still_run(world: World) -> None:
    """The readers route tells a data's site, for the job it names by digest, the unfinished
    steps that read its data and where (nothing else); others, another digest and a finished
    job hear nothing more."""
    net = world.net
    site1, site2, site3 = (net.sites[p] for p in ("p1", "p2", "p3"))
    data2 = f"asset:{site2.party.namespace}:data:{site2.party.namespace}:site"
    data3 = f"asset:{site3.party.namespace}:data:{site3.party.namespace}:site"
    job = _job(
        site1.party.id,
        {"a": ("x", data2), "b": ("y", data3), "c": ("z", data2)},
        world.compute,
    )
    job_id = _new_id()
    s1, s2 = SiteId.parse(site1.id), SiteId.parse(site2.id)
    repo = _repositories(site1).jobs
    repo.create_job(job_id, job, Plan({"a": s2, "b": s1, "c": s1}), s1, _now())
    made = {ref.output: result for ref, result in job.result_ids().items() if ref.step == "c"}
    repo.set_step_state(job_id, "c", StepState.REUSED, _now(), results=made)
    assert repo.get_job(job_id).state is JobState.RUNNING

    def ask(identity: TlsIdentity, digest: str = job_digest(job)) -> httpx.Response:
        with client_as(identity, site1.external_url) as client:
            return client.get(f"/jobs/{job_id}/readers", params={"job_digest": digest})

    to_site2 = ask(site2.identity)
    assert to_site2.status_code == 200, to_site2.text
    assert to_site2.json() == {"job_id": job_id, "readers": [{"step": "a", "site": site2.id}]}
    assert ask(site3.identity).json() == {
        "job_id": job_id,
        "readers": [{"step": "b", "site": site1.id}],
    }
    with client_as(site2.identity, site1.external_url) as client:
        nothing = client.get(f"/jobs/{'0' * 32}/readers", params={"job_digest": job_digest(job)})
    other_job = job_digest(_job(site1.party.id, {"a": ("x", data2)}, world.compute))
    for refused in (ask(site2.identity, d) for d in (other_job, "", "é" * 64, job_id)):
        assert refused.status_code == 404
        assert _shape(refused, job_id) == _shape(nothing, "0" * 32)
    repo.cancel_job(job_id, "done", _now())
    assert repo.get_job(job_id).state is JobState.CANCELLED
    for identity in (site2.identity, site3.identity):
        assert ask(identity).json() == {"job_id": job_id, "readers": []}


def test_a_live_grant_is_given_only_on_the_readers_answer(world: World) -> None:
    """The data's site grants a step at the asker of the job its submitter's site confirms by
    digest, running; an altered job, a step planned elsewhere or a finished job get none."""
    net = world.net
    site1, site3 = net.sites["p1"], net.sites["p3"]
    s3 = SiteId.parse(site3.id)
    live_id, live_job = world.live_job
    repo3 = _repositories(site3).jobs
    altered = _job(site3.party.id, {"s": ("other", str(world.live_data))}, world.compute)
    elsewhere_id = _new_id()
    repo3.create_job(elsewhere_id, live_job, Plan({"s": SiteId.parse(site1.id)}), s3, _now())
    finished_id = _new_id()
    repo3.create_job(finished_id, live_job, Plan({"s": s3}), s3, _now())
    repo3.cancel_job(finished_id, "done", _now())
    attempts = {
        "does not confirm": (live_id, altered),
        "does not say that step s of job": (elsewhere_id, live_job),
        "(it is not planned there, or it has finished)": (finished_id, live_job),
    }
    with client_as(site3.identity, site1.external_url) as as_site3:
        for reason, (job_id, job) in attempts.items():
            body = _grant_body(job_id, job, site3.id, world.live_data)
            refused = as_site3.post("/live/grants", json=body)
            assert refused.status_code == 403, refused.text
            assert reason in refused.json()["error"]["message"]
        granted = as_site3.post(
            "/live/grants", json=_grant_body(live_id, live_job, site3.id, world.live_data)
        )
        assert granted.status_code == 201, granted.text
        token = granted.json()["token"]
        assert as_site3.get(f"/live/{token}/files").json()["files"][0]["path"] == "payload"
        assert as_site3.delete(f"/live/{token}").status_code == 200
