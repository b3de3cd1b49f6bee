"""The internal API of a site, under `/internal`: for the users of the site's owner party.

Every endpoint needs a certificate from the owner's user CA; those that
change something (assets, rules) need the admin role.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency aliases
# defined inside the router factories, which string annotations would hide.

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from mahiru.api.auth import CertificateAuthenticator, UserCaller, user_dependencies
from mahiru.api.site_images import IMAGE_RESPONSES, IMAGE_UPLOAD_BODY, image_response
from mahiru.api.site_models import (
    AssetIn,
    AssetList,
    AssetOut,
    DecisionOut,
    ExplainRequest,
    RejectedRuleList,
    RejectedRuleOut,
    RevocationIn,
    RuleEntry,
    RuleList,
    RuleOutcomeOut,
    SignedRuleIn,
    StatusOut,
    parse_signed_rule,
)
from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId, parse_identifier
from mahiru.model.items import WorkflowItem
from mahiru.model.serialization import job_from_dict
from mahiru.services.jobs.egress import Egress
from mahiru.services.site import RuleOutcome, SiteServices
from mahiru.storage import REGISTRY_SOURCE


def stored_asset_id(text: str) -> AssetId | ResultId:
    """An asset or result id from a URL path."""
    identifier = parse_identifier(text, ("asset", "result"))
    assert isinstance(identifier, AssetId | ResultId)  # guaranteed by the allowed kinds
    return identifier


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client hanging up is its mistake, not ours."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            yield chunk
    except ClientDisconnect:
        raise InvalidInput(f"the upload was interrupted after {received} bytes") from None


def _outcome(outcome: RuleOutcome) -> RuleOutcomeOut:
    return RuleOutcomeOut(rule_id=outcome.rule_id, changed=outcome.changed, version=outcome.version)


def internal_router(
    services: SiteServices, egress: Egress, auth: CertificateAuthenticator
) -> APIRouter:
    """The routes of the internal API, served by `services`; images leave through `egress`."""

    user, admin = user_dependencies(auth)
    User = Annotated[UserCaller, Depends(user)]
    Admin = Annotated[UserCaller, Depends(admin)]
    router = APIRouter(prefix="/internal", tags=["internal"])

    # --- assets --------------------------------------------------------------

    @router.post("/assets", response_model=AssetOut, summary="Describe an asset")
    def add_asset(body: AssetIn, caller: Admin) -> AssetOut:
        """Describe an asset stored at this site (its image is uploaded separately).

        Describing it again with the same kind and metadata changes nothing.
        """
        asset = Asset(AssetId.parse(body.id), AssetKind(body.kind), dict(body.metadata))
        return AssetOut.of(services.assets.add(asset))

    @router.put(
        "/assets/{asset_id}/image",
        response_model=AssetOut,
        summary="Upload an asset's image",
        openapi_extra=IMAGE_UPLOAD_BODY,
    )
    async def upload_image(
        asset_id: str,
        request: Request,
        caller: Admin,
        digest: Annotated[
            str, Header(alias="X-Mahiru-Digest", description="sha256:<hex> of the whole body")
        ],
    ) -> AssetOut:
        """Stream an asset's image; it is stored only if its sha256 equals the digest header."""
        length = request.headers.get("content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        record = await services.assets.upload_image(
            stored_asset_id(asset_id),
            _body(request),
            digest,
            sender=str(caller.party),
            user=caller.person,
            declared_size=declared,
        )
        return AssetOut.of(record)

    @router.get("/assets", response_model=AssetList, summary="List assets")
    def list_assets(caller: User) -> AssetList:
        """Every asset stored at this site, by id."""
        return AssetList(assets=[AssetOut.of(record) for record in services.assets.list()])

    @router.get("/assets/{asset_id}", response_model=AssetOut, summary="Show an asset")
    def get_asset(asset_id: str, caller: User) -> AssetOut:
        """One stored asset."""
        return AssetOut.of(services.assets.get(stored_asset_id(asset_id)))

    @router.get(
        "/assets/{asset_id}/image",
        response_class=Response,
        responses=IMAGE_RESPONSES,
        summary="Download an asset's image",
    )
    def download_image(
        asset_id: str,
        caller: User,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
        if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    ) -> Response:
        """Stream an asset's or result's image (or a byte range, to resume a download),
        if policy lets the caller's party use it; 403 with the explanation otherwise."""
        image = egress.to_party(stored_asset_id(asset_id), caller.party, user=caller.person)
        return image_response(image, range_header, if_range)

    @router.delete("/assets/{asset_id}", response_model=AssetOut, summary="Delete an asset")
    def delete_asset(asset_id: str, caller: Admin) -> AssetOut:
        """Delete an asset, and its image unless another asset uses it."""
        return AssetOut.of(services.assets.delete(stored_asset_id(asset_id)))

    # --- rules ---------------------------------------------------------------

    @router.post("/rules", response_model=RuleOutcomeOut, summary="Add a signed rule")
    def add_rule(body: SignedRuleIn, caller: Admin) -> RuleOutcomeOut:
        """Store a rule signed by the owner of its namespace; peers then replicate it."""
        return _outcome(services.rules.add(parse_signed_rule(body), user=caller.person))

    @router.get("/rules", response_model=RuleList, summary="List rules")
    def list_rules(caller: User, include_replicated: bool = False) -> RuleList:
        """This site's active rules, oldest first; with `include_replicated`, peers' too."""
        site = str(services.site)
        entries = [
            RuleEntry(rule_id=signed.rule_id, source=site, rule=signed.to_dict())
            for signed in services.rules.active()
        ]
        if include_replicated:
            for source in services.replica.sources():
                if source == REGISTRY_SOURCE:
                    continue
                entries.extend(
                    RuleEntry(rule_id=signed.rule_id, source=source, rule=signed.to_dict())
                    for signed in services.rules.replicated(source)
                )
        return RuleList(rules=entries)

    @router.post("/rules/revocations", response_model=RuleOutcomeOut, summary="Revoke a rule")
    def revoke_rule(body: RevocationIn, caller: Admin) -> RuleOutcomeOut:
        """Revoke a rule stored here, with a revocation signed by its namespace owner."""
        return _outcome(services.rules.revoke(body.parse(), user=caller.person))

    @router.get(
        "/rules/rejected", response_model=RejectedRuleList, summary="List rejected peer rules"
    )
    def rejected_rules(caller: User) -> RejectedRuleList:
        """Rules and revocations from peers that failed validation, with the reasons."""
        return RejectedRuleList(
            rejected=[RejectedRuleOut.of(r) for r in services.replica.rejected_rules()]
        )

    # --- policy, replication, status -------------------------------------------

    @router.post(
        "/policy/explain",
        response_model=DecisionOut,
        response_model_exclude_none=True,
        summary="Explain a policy decision",
    )
    def explain(body: ExplainRequest, caller: User) -> DecisionOut:
        """Whether `site` may access (or `party` may use) one item of a job, and why."""
        if (body.site is None) == (body.party is None):
            raise InvalidInput("give exactly one of site or party")
        job = job_from_dict(body.job.model_dump())
        item = WorkflowItem.parse(body.item, job.workflow)
        decision = services.policy.explain(
            job,
            item,
            site=SiteId.parse(body.site) if body.site is not None else None,
            party=PartyId.parse(body.party) if body.party is not None else None,
        )
        return DecisionOut.model_validate(decision.to_dict())

    @router.post("/replication/run", response_model=StatusOut, summary="Replicate now")
    async def replicate_now(caller: Admin) -> StatusOut:
        """Run a replication round now (waiting for one in progress); return the status.

        Admins only: each round calls the registry and every peer."""
        await asyncio.to_thread(services.replicator.run_once)
        return StatusOut.of(await asyncio.to_thread(services.status))

    @router.get("/status", response_model=StatusOut, summary="Site status")
    def status(caller: User) -> StatusOut:
        """Replication versions and last errors per source, rule and asset counts."""
        return StatusOut.of(services.status())

    return router
