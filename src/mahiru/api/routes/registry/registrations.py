"""Signed registrations, under `/registrations`: how parties and sites join, change and leave."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema

from mahiru.api.registry_models import RegistrationResult
from mahiru.api.routes.registry.dependencies import NO_QUERY, Caller, Registry
from mahiru.model.registration_forms import SIGNED_DOCUMENT_SCHEMA
from mahiru.model.registrations import SignedRegistration

#: A signed registration document, parsed by `SignedRegistration.from_dict`.
Document = Annotated[dict[str, Any], Body(), WithJsonSchema(SIGNED_DOCUMENT_SCHEMA)]

router = APIRouter()


@router.post("/registrations", response_model=RegistrationResult, dependencies=NO_QUERY)
def post_registration(document: Document, caller: Caller, service: Registry) -> dict[str, Any]:
    """Apply a signed registration document (see the document schemas for the rules)."""
    signed = SignedRegistration.from_dict(document)
    outcome = service.apply(caller.identity, signed)
    return {"version": outcome.version, "changed": outcome.changed}
