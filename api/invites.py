from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.pagination import paginate

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.pagination import Page
from api.schemas import PathId
from core.models import Invite
from core.selectors.invites import invite_quota_status, invites_of_user
from core.services.invites import invite_create, invite_revoke

router = Router(tags=["invites"], auth=member_auth)


class InviteOut(Schema):
    id: int
    code: str | None  # shown only while the invite can still be shared
    status: str  # active, used, revoked or expired
    created_at: datetime
    expires_at: datetime
    used_by: str | None
    used_at: datetime | None

    @staticmethod
    def resolve_status(invite: Invite) -> str:
        return invite.effective_status

    @staticmethod
    def resolve_code(invite: Invite) -> str | None:
        return invite.code if InviteOut.resolve_status(invite) == Invite.Status.ACTIVE else None

    @staticmethod
    def resolve_used_by(invite: Invite) -> str | None:
        return invite.used_by.username if invite.used_by else None


class QuotaOut(Schema):
    quota: int | None  # None = unlimited
    used: int
    left: int | None
    resets_at: datetime


@router.get("", response={200: list[InviteOut], **ERRORS}, operation_id="invites_list",
            summary="My invites, newest first")
@paginate(Page)
def list_invites(request: HttpRequest) -> QuerySet[Invite]:
    return invites_of_user(user=current_user(request))


@router.post("", response={201: InviteOut, **ERRORS}, operation_id="invites_create",
             summary="Create an invite within this month's quota")
def create_invite(request: HttpRequest) -> Status[Any]:
    invite = invite_create(creator=current_user(request))
    return Status(201, invite)


@router.post("/{invite_id}/revoke", response={200: InviteOut, **ERRORS},
             operation_id="invites_revoke", summary="Revoke an unused invite (refunds the quota)")
def revoke_invite(request: HttpRequest, invite_id: PathId) -> Invite:
    return invite_revoke(actor=current_user(request), invite_id=invite_id)


@router.get("/quota", response={200: QuotaOut, **ERRORS}, operation_id="invites_quota",
            summary="Invites left this calendar month")
def quota(request: HttpRequest) -> QuotaOut:
    return QuotaOut.model_validate(invite_quota_status(user=current_user(request)),
                                   from_attributes=True)
