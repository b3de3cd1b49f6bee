"""A job's crate metadata (Provenance Run Crate), built from its status, steps and receipts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mahiru import pki
from mahiru.model.crates import (
    METADATA_FILE,
    PROVENANCE_FILE,
    RECEIPTS_FORMAT,
    WORKFLOW_FILE,
    CrateOutput,
    CrateSource,
    IncludedImage,
    JobCrate,
    build_crate,
    urn,
)
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.model.prov import job_provenance
from mahiru.model.receipts import Receipt, ReceiptChain, ReceiptInput, SignedReceipt
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.model.workflow import Plan, StepOutputRef
from mahiru.pki.signatures import sign_with_tls_key

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
P1, P2 = "party:p1.org:p1", "party:p2.org:p2"
SITE1, SITE2 = SiteId.parse("site:p1.org:site"), SiteId.parse("site:p2.org:site")
SCRIPT = "asset:p1.org:script:p1.org:site"
DATA = "asset:p2.org:data:p2.org:site"
BASE = "asset:p1.org:base:p1.org:site"
JOB = job_from_dict(
    {
        "submitter": P1,
        "workflow": {
            "inputs": ["input"],
            "outputs": {"result": "combine.out"},
            "steps": [
                {"name": "prepare", "compute_asset": SCRIPT, "inputs": {"data": "input"},
                 "outputs": {"out": BASE}},
                {"name": "combine", "compute_asset": SCRIPT, "inputs": {"a": "prepare.out"},
                 "outputs": {"out": None}},
            ],
        },
        "inputs": {"input": DATA},
    }
)  # fmt: skip
JOB_ID = JobId("job1")
PLAN = Plan({"prepare": SITE2, "combine": SITE1})
OWNERS = {SITE1: PartyId.parse(P1), SITE2: PartyId.parse(P2)}
PREPARED = JOB.result_ids()[StepOutputRef("prepare", "out")]
COMBINED = JOB.result_ids()[StepOutputRef("combine", "out")]
CA = pki.create_network_ca()
KEYS = {site: pki.issue_site_certificate(CA, str(site)) for site in (SITE1, SITE2)}


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


D_SCRIPT, D_DATA, D_BASE = _hex("script"), _hex("data"), _hex("base")
D_PREPARED, D_COMBINED = _hex("prepared"), _hex("combined")


def _signed(
    result: ResultId, digest: str, step: str, site: SiteId, inputs: list[ReceiptInput]
) -> SignedReceipt:
    receipt = Receipt.of(result, digest, JOB_ID, step, "out", site, inputs, [_hex("rule")], NOW)
    signature = sign_with_tls_key(KEYS[site].private_key, receipt.canonical_bytes())
    return SignedReceipt(receipt, signature)


COMPUTE = ReceiptInput("compute", SCRIPT, D_SCRIPT)


CHAIN = ReceiptChain(
    (
        _signed(COMBINED, D_COMBINED, "combine", SITE1,
                [COMPUTE, ReceiptInput("a", str(PREPARED), D_PREPARED)]),
        _signed(PREPARED, D_PREPARED, "prepare", SITE2,
                [COMPUTE, ReceiptInput("data", DATA, D_DATA),
                 ReceiptInput("@out", BASE, D_BASE)]),
    )
)  # fmt: skip
STATUS = JobStatus(
    JOB_ID, JOB, SITE1, JobState.SUCCEEDED, NOW, NOW + timedelta(seconds=9), plan=PLAN,
    started_at=NOW, finished_at=NOW + timedelta(seconds=9), submitted_by="alice@party:p1.org:p1",
)  # fmt: skip


def _steps() -> list[StepStatus]:
    def done(step: str, site: SiteId, start: int, result: ResultId) -> StepStatus:
        return replace(
            StepStatus.waiting(JOB_ID, step, site, NOW),
            state=StepState.SUCCEEDED,
            started_at=NOW + timedelta(seconds=start),
            finished_at=NOW + timedelta(seconds=start + 3),
            exit_code=0,
            results={"out": result},
        )

    return [done("prepare", SITE2, 1, PREPARED), done("combine", SITE1, 5, COMBINED)]


OUTPUT_IMAGE = IncludedImage(COMBINED, D_COMBINED, 1234)


def _source(**changes: Any) -> CrateSource:
    steps = _steps()
    source = CrateSource(
        status=STATUS,
        steps=steps,
        owners=OWNERS,
        outputs=[CrateOutput("result", COMBINED, CHAIN, OUTPUT_IMAGE)],
        provenance=job_provenance(STATUS, steps, OWNERS),
        version="1.2.3",
    )
    return replace(source, **changes)


def _entities(crate: JobCrate) -> dict[str, dict[str, Any]]:
    return {entity["@id"]: entity for entity in crate.metadata["@graph"]}


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item["@id"] for item in items]


def test_the_crate_conforms_to_the_provenance_run_crate_profiles() -> None:
    """The descriptor names RO-Crate 1.1; the root the three run profiles, the workflow."""
    crate = build_crate(_source())
    entities = _entities(crate)
    assert crate.metadata["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    assert "https://w3id.org/ro/crate/1.1" in _ids(entities[METADATA_FILE]["conformsTo"])
    root = entities["./"]
    assert {
        "https://w3id.org/ro/wfrun/process/0.5",
        "https://w3id.org/ro/wfrun/workflow/0.5",
        "https://w3id.org/ro/wfrun/provenance/0.5",
    } <= set(_ids(root["conformsTo"]))
    assert _ids(root["mainEntity"]) == [WORKFLOW_FILE]
    workflow = entities[WORKFLOW_FILE]
    assert "ComputationalWorkflow" in workflow["@type"] and "HowTo" in workflow["@type"]
    assert _ids(workflow["step"]) == ["#step-prepare", "#step-combine"]
    assert _ids(workflow["hasPart"]) == [urn(SCRIPT)]


def test_each_step_run_is_a_create_action_with_times_tool_image_agent_objects_results() -> None:
    """prepare ran at site2 on the input and output base, and made the prepared result."""
    entities = _entities(build_crate(_source()))
    run = entities["#run-step-prepare"]
    assert run["@type"] == "CreateAction"
    assert run["startTime"] == "2026-12-06T12:00:01.000+00:00"  # as the profiles want it
    assert run["endTime"] == "2026-12-06T12:00:04.000+00:00"
    assert _ids(run["instrument"]) == [urn(SCRIPT)]
    assert entities[urn(SCRIPT)]["softwareVersion"] == f"sha256:{D_SCRIPT}"
    (image,) = _ids(run["containerImage"])
    assert entities[image]["sha256"] == D_SCRIPT
    assert _ids(run["agent"]) == [urn(SITE2)]
    assert _ids(entities[urn(SITE2)]["parentOrganization"]) == [urn(P2)]
    assert _ids(run["object"]) == [urn(DATA), urn(BASE)]
    assert entities[urn(DATA)]["sha256"] == D_DATA  # by id and digest, data not included
    assert _ids(run["result"]) == [urn(PREPARED)]
    assert entities[urn(PREPARED)]["sha256"] == D_PREPARED
    control = entities["#control-prepare"]
    assert _ids(control["instrument"]) == ["#step-prepare"]
    assert _ids(control["object"]) == ["#run-step-prepare"]


def test_the_included_output_is_a_file_with_its_id_digest_and_size() -> None:
    """The output the caller may have lies in outputs/, named by id, digest and size."""
    crate = build_crate(_source())
    entities = _entities(crate)
    combine = entities["#run-step-combine"]
    (path,) = _ids(combine["result"])
    assert path == OUTPUT_IMAGE.path and path.startswith("outputs/")
    assert entities[path]["identifier"] == str(COMBINED)
    assert entities[path]["sha256"] == D_COMBINED
    assert entities[path]["contentSize"] == "1234"
    assert path in _ids(entities["./"]["hasPart"])
    assert crate.images == (OUTPUT_IMAGE,)
    assert _ids(combine["object"]) == [urn(PREPARED)]  # the intermediate: named, not included


def test_a_withheld_output_is_named_with_the_reason_and_not_included() -> None:
    """An output awaiting review: its urn with its signed digest, the reason, no file."""
    held = CrateOutput("result", COMBINED, CHAIN, None, "awaiting review by party:p2.org:p2")
    crate = build_crate(_source(outputs=[held]))
    entities = _entities(crate)
    assert crate.images == ()
    entity = entities[urn(COMBINED)]
    assert entity["description"] == "awaiting review by party:p2.org:p2"
    assert entity["sha256"] == D_COMBINED
    assert not any(i.startswith("outputs/") for i in _ids(entities["./"]["hasPart"]))


def test_the_job_run_is_by_the_user_and_orchestrated_by_mahiru() -> None:
    """The workflow run's agent is the person who submitted it, of the submitting party."""
    entities = _entities(build_crate(_source()))
    run = entities[f"#run-{JOB_ID}"]
    assert _ids(run["instrument"]) == [WORKFLOW_FILE]
    user = urn("user:alice@party:p1.org:p1")
    assert _ids(run["agent"]) == [user]
    assert entities[user]["@type"] == "Person"
    assert _ids(entities[user]["memberOf"]) == [urn(P1)]
    assert _ids(run["result"]) == [OUTPUT_IMAGE.path]
    organize = entities[f"#orchestrate-{JOB_ID}"]
    assert _ids(organize["object"]) == ["#control-prepare", "#control-combine"]
    assert _ids(organize["result"]) == [f"#run-{JOB_ID}"]
    assert entities["#mahiru"]["softwareVersion"] == "1.2.3"


def test_connections_link_the_workflow_input_the_steps_and_the_output() -> None:
    """input -> prepare.data, prepare.out -> combine.a, combine.out -> result."""
    entities = _entities(build_crate(_source()))

    def link(ident: str) -> tuple[str, str]:
        entity = entities[ident]
        return _ids(entity["sourceParameter"])[0], _ids(entity["targetParameter"])[0]

    assert link("#connection-prepare-data") == ("#param-input-input", "#param-prepare-in-data")
    assert link("#connection-combine-a") == ("#param-prepare-out-out", "#param-combine-in-a")
    assert link("#connection-output-result") == ("#param-combine-out-out", "#param-output-result")
    assert _ids(entities["#step-combine"]["connection"]) == ["#connection-combine-a"]


def test_the_documents_are_the_job_its_prov_and_each_output_receipt_chain() -> None:
    """workflow.json is the job; the chain file is in `assets show --json` form."""
    crate = build_crate(_source())
    assert json.loads(crate.documents[WORKFLOW_FILE]) == job_to_dict(JOB)
    assert json.loads(crate.documents[PROVENANCE_FILE]) == job_provenance(STATUS, _steps(), OWNERS)
    record = json.loads(crate.documents["receipts/result.json"])
    assert record["id"] == str(COMBINED)
    assert record["image_digest"] == f"sha256:{D_COMBINED}"
    assert ReceiptChain.from_metadata(record["metadata"]) == CHAIN
    entity = _entities(crate)["receipts/result.json"]
    assert _ids(entity["conformsTo"]) == [RECEIPTS_FORMAT]
    assert set(crate.documents) <= set(_ids(_entities(crate)["./"]["hasPart"]))


def test_an_included_input_is_a_file_in_inputs() -> None:
    """An input the caller may use (its own output base) goes in, with its digest."""
    base = IncludedImage(AssetId.parse(BASE), D_BASE, 10)
    entities = _entities(build_crate(_source(inputs=[base])))
    assert base.path == "inputs/p1.org-base.tar"
    assert base.path in _ids(entities["#run-step-prepare"]["object"])
    assert entities[base.path]["identifier"] == BASE
    assert urn(BASE) not in entities


def test_a_running_job_has_no_end_and_unfinished_steps_no_times() -> None:
    """Nothing is made up: no end time, no status, for what has not finished."""
    running = replace(STATUS, state=JobState.RUNNING, finished_at=None)
    waiting = [StepStatus.waiting(JOB_ID, "prepare", SITE2, NOW)]
    entities = _entities(build_crate(_source(status=running, steps=waiting, outputs=[])))
    assert "endTime" not in entities[f"#run-{JOB_ID}"]
    assert "actionStatus" not in entities[f"#run-{JOB_ID}"]
    run = entities["#run-step-prepare"]
    assert "startTime" not in run and "endTime" not in run and "actionStatus" not in run
    assert "containerImage" not in run  # no receipt names its image yet
