"""Signed registrations, under `/registrations`: how parties and sites join, change and leave."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from mahiru.api.registry_models import RegistrationDocument, RegistrationResult
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry
from mahiru.model.registrations import SignedRegistration

router = APIRouter()


@router.post("/registrations", response_model=RegistrationResult, dependencies=NO_QUERY)
def post_registration(
    document: Annotated[RegistrationDocument, Body()], caller: Caller, service: Registry
) -> dict[str, Any]:
    """Apply a signed registration document (see the document schemas for the rules)."""
    signed = SignedRegistration.from_dict(document.model_dump())
    outcome = service.apply(caller.identity, signed)
    return {"version": outcome.version, "changed": outcome.changed}
