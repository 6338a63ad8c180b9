from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.net import client_ip
from api.schemas import InputSchema, LinkCode
from core.services.discord_link import discord_roles_resync, discord_unlink, link_code_consume

router = Router(tags=["discord"], auth=member_auth)


class LinkIn(InputSchema):
    code: LinkCode


class LinkOut(Schema):
    discord_id: str
    discord_username: str


class OkOut(Schema):
    ok: bool


@router.post("/link", response={200: LinkOut, **ERRORS}, operation_id="discord_link",
             summary="Link my Discord account with the code from /code")
def link(request: HttpRequest, body: LinkIn) -> LinkOut:
    linked = link_code_consume(user=current_user(request), code=body.code,
                               ip=client_ip(request))
    return LinkOut(discord_id=str(linked.discord_id), discord_username=linked.discord_username)


@router.delete("/link", response={200: OkOut, **ERRORS}, operation_id="discord_unlink",
               summary="Unlink my Discord account")
def unlink(request: HttpRequest) -> OkOut:
    discord_unlink(user=current_user(request))
    return OkOut(ok=True)


@router.post("/resync", response={200: OkOut, **ERRORS}, operation_id="discord_resync",
             summary="Put my Discord roles back as the site says (queues a role sync)")
def resync(request: HttpRequest) -> OkOut:
    discord_roles_resync(user=current_user(request))
    return OkOut(ok=True)
