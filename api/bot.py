"""Endpoints for the Discord bot: bearer BOT_API_TOKEN, acting for the invoking Discord user.

The bot names that user in the X-Discord-User-Id header; the services authorise and throttle
each command with that person's site account, never with the shared token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import HeaderEx, P, Router, Schema
from ninja.params.functions import Header as header_param
from pydantic import ConfigDict, Field, StrictInt, StringConstraints, WithJsonSchema

from api.auth import bot_auth
from api.errors import ERRORS
from api.schemas import WHOLE, InputSchema
from api.stats import UserStatsOut
from core.services import bot

router = Router(auth=bot_auth, tags=["bot"])


# Discord ids as digit strings, at most 8999999999999999999: every snowflake until about 2083,
# and always within the signed BIGINT the ids are stored in, so the bound lives in the schema
# itself rather than in a check the schema does not show.
SNOWFLAKE_PATTERN = r"^(?:[1-9][0-9]{0,17}|[1-8][0-9]{18})$"
Snowflake = Annotated[str, StringConstraints(pattern=SNOWFLAKE_PATTERN, min_length=1,
                                             max_length=19)]
# Header values are strings: an absent header, not null, is what "no invoker" looks like.
OptionalSnowflake = Annotated[
    Snowflake | None,
    WithJsonSchema({"type": "string", "pattern": SNOWFLAKE_PATTERN, "minLength": 1,
                    "maxLength": 19}),
]
Slug = Annotated[str, StringConstraints(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1,
                                        max_length=50)]
# No control characters (PostgreSQL refuses NUL in text and JSON columns, and no slash-command
# option carries any) and, where required, something besides spaces. Expressed as patterns
# rather than stripping, so what the schema promises is exactly what is accepted.
_PLAIN = r"[^\x00-\x1f\x7f-\x9f]"
_SOME_TEXT = rf"^{_PLAIN}*[^\s\x00-\x1f\x7f-\x9f]{_PLAIN}*$"
DiscordName = Annotated[str, StringConstraints(pattern=_SOME_TEXT, max_length=64)]
BanReason = Annotated[str, StringConstraints(pattern=_SOME_TEXT, max_length=500)]
Note = Annotated[str, StringConstraints(pattern=rf"^{_PLAIN}*$", max_length=200)]
# Anything typed: normalising the key drops what cannot be part of one before any query.
KeyCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]

_INVOKER_DOC = "Discord id of the user who ran the command; the call is made with their rights."
Invoker = HeaderEx[Snowflake, P(alias="X-Discord-User-Id", description=_INVOKER_DOC)]
# Built with its default rather than through HeaderEx: Ninja sets a shortcut's default after
# construction, which pydantic drops when merging it with the WithJsonSchema metadata.
OptionalInvoker = Annotated[
    OptionalSnowflake,
    header_param(None, alias="X-Discord-User-Id",
                 description="Discord id of the user on whose behalf the bot asks, if any "
                             "(throttled)."),
]


class _In(InputSchema):
    # A misspelt field must fail loudly rather than be ignored.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class BotLinkCodeIn(_In):
    discord_username: DiscordName


class BotLinkCodeOut(Schema):
    code: str
    expires_at: datetime


class BotRedeemIn(_In):
    key: KeyCode


class BotSubscriptionOut(Schema):
    product: str
    product_name: str
    expires_at: datetime


class BotKeysIn(_In):
    product: Slug
    duration_days: Annotated[StrictInt, Field(ge=1, le=3650), WHOLE]
    # A Discord reply cannot carry more codes than this.
    count: Annotated[StrictInt, Field(ge=1, le=100), WHOLE]
    note: Note = ""


class BotKeysOut(Schema):
    batch: UUID
    product: str
    duration_days: int
    codes: list[str]


class BotBanIn(_In):
    target_discord_id: Snowflake
    reason: BanReason
    duration_hours: Annotated[StrictInt, Field(ge=1, le=87_600), WHOLE] | None = None


class BotBanOut(Schema):
    target_discord_id: str
    target_username: str
    reason: str
    created_at: datetime
    ends_at: datetime | None


class BotUnbanIn(_In):
    target_discord_id: Snowflake


class BotUnbanOut(Schema):
    target_discord_id: str
    target_username: str
    lifted_at: datetime


class BotMemberRolesOut(Schema):
    discord_id: str
    linked: bool
    # Strings: snowflakes exceed the integers JavaScript and many JSON readers keep exact.
    wanted: list[str]
    managed: list[str]


class BotMemberEventIn(_In):
    event: Literal["join", "update"]


class BotMemberEventOut(Schema):
    queued: bool


def _ids(values: frozenset[int]) -> list[str]:
    return [str(value) for value in sorted(values)]


@router.post("/link-codes", response={200: BotLinkCodeOut, **ERRORS},
             operation_id="bot_link_code_create",
             summary="Issue a one-time code linking the invoker's Discord account (/code)")
def link_code_create(request: HttpRequest, invoker: Invoker,
                     payload: BotLinkCodeIn) -> BotLinkCodeOut:
    issued = bot.bot_link_code_create(invoker_discord_id=int(invoker),
                                      discord_username=payload.discord_username)
    return BotLinkCodeOut(code=issued.code, expires_at=issued.expires_at)


@router.post("/redeem", response={200: BotSubscriptionOut, **ERRORS},
             operation_id="bot_key_redeem", summary="Redeem a key for the invoker (/redeem)")
def key_redeem(request: HttpRequest, invoker: Invoker, payload: BotRedeemIn) -> BotSubscriptionOut:
    subscription = bot.bot_key_redeem(invoker_discord_id=int(invoker), code=payload.key)
    return BotSubscriptionOut(product=subscription.product.slug,
                              product_name=subscription.product.name,
                              expires_at=subscription.expires_at)


@router.post("/keys", response={200: BotKeysOut, **ERRORS}, operation_id="bot_keys_generate",
             summary="Generate a batch of keys, Moderator and above (/generate_key)")
def keys_generate(request: HttpRequest, invoker: Invoker, payload: BotKeysIn) -> BotKeysOut:
    generated = bot.bot_keys_generate(
        invoker_discord_id=int(invoker), product_slug=payload.product,
        duration_days=payload.duration_days, count=payload.count, note=payload.note,
    )
    return BotKeysOut(batch=generated.batch, product=generated.product.slug,
                      duration_days=generated.duration.days, codes=generated.codes)


@router.post("/bans", response={200: BotBanOut, **ERRORS}, operation_id="bot_ban_create",
             summary="Ban a linked member, Support and above (/ban)")
def ban_create(request: HttpRequest, invoker: Invoker, payload: BotBanIn) -> BotBanOut:
    ban = bot.bot_ban_create(
        invoker_discord_id=int(invoker), target_discord_id=int(payload.target_discord_id),
        reason=payload.reason, duration_hours=payload.duration_hours,
    )
    return BotBanOut(target_discord_id=payload.target_discord_id,
                     target_username=ban.user.username, reason=ban.reason,
                     created_at=ban.created_at, ends_at=ban.ends_at)


@router.post("/unbans", response={200: BotUnbanOut, **ERRORS}, operation_id="bot_ban_lift",
             summary="Lift a linked member's ban, Support and above (/unban)")
def ban_lift(request: HttpRequest, invoker: Invoker, payload: BotUnbanIn) -> BotUnbanOut:
    ban = bot.bot_ban_lift(invoker_discord_id=int(invoker),
                           target_discord_id=int(payload.target_discord_id))
    assert ban.lifted_at is not None  # ban_lift sets it
    return BotUnbanOut(target_discord_id=payload.target_discord_id,
                       target_username=ban.user.username, lifted_at=ban.lifted_at)


@router.get("/stats/{discord_id}", response={200: UserStatsOut, **ERRORS},
            operation_id="bot_user_stats",
            summary="A linked member's stats: own always, others Support and above (/stats)")
def user_stats(request: HttpRequest, discord_id: Snowflake, invoker: Invoker) -> UserStatsOut:
    stats = bot.bot_user_stats(invoker_discord_id=int(invoker), target_discord_id=int(discord_id))
    return UserStatsOut.model_validate(stats, from_attributes=True)


@router.get("/members/{discord_id}/roles", response={200: BotMemberRolesOut, **ERRORS},
            operation_id="bot_member_roles",
            summary="The managed Discord roles a member should hold, to converge them")
def member_roles(request: HttpRequest, discord_id: Snowflake,
                 invoker: OptionalInvoker = None) -> BotMemberRolesOut:
    roles = bot.bot_member_roles(discord_id=int(discord_id),
                                 invoker_discord_id=int(invoker) if invoker else None)
    return BotMemberRolesOut(discord_id=str(roles.discord_id), linked=roles.linked,
                             wanted=_ids(roles.wanted), managed=_ids(roles.managed))


@router.post("/members/{discord_id}/events", response={200: BotMemberEventOut, **ERRORS},
             operation_id="bot_member_event",
             summary="Report a member's join or role update; queues a role sync if linked")
def member_event(request: HttpRequest, discord_id: Snowflake, payload: BotMemberEventIn,
                 invoker: OptionalInvoker = None) -> BotMemberEventOut:
    queued = bot.bot_member_event(discord_id=int(discord_id), event=payload.event,
                                  invoker_discord_id=int(invoker) if invoker else None)
    return BotMemberEventOut(queued=queued)
