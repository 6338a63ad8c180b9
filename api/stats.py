from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from api.auth import current_user, member_auth
from api.errors import ERRORS
from api.schemas import PathId
from core.selectors.stats import PeriodStats, UserStats, user_stats
from core.services.stats import stats_history_for_viewer, stats_user_for_viewer

router = Router(tags=["stats"], auth=member_auth)


class SubscriptionStatsOut(Schema):
    product: str
    product_name: str
    started_at: datetime
    expires_at: datetime
    active: bool


class UserStatsOut(Schema):
    id: int
    username: str
    role: str | None
    date_joined: datetime
    invited_by: str | None
    invites_created: int
    invites_used: int
    invite_quota: int | None
    invites_left_this_month: int | None
    keys_redeemed: int
    days_left_total: int
    discord_linked: bool
    discord_username: str
    banned: bool
    ban_reason: str | None
    ban_ends_at: datetime | None
    subscriptions: list[SubscriptionStatsOut]


class PeriodOut(Schema):
    start: datetime
    end: datetime
    registrations: int
    redemptions: int
    active_subscriptions: int


class HistoryOut(Schema):
    days: list[PeriodOut]
    weeks: list[PeriodOut]


class HistoryIn(Schema):
    days: int = Field(30, ge=1, le=90)
    weeks: int = Field(12, ge=1, le=52)


def _out(stats: UserStats) -> UserStatsOut:
    return UserStatsOut.model_validate(stats, from_attributes=True)


@router.get("/me", response={200: UserStatsOut, **ERRORS}, operation_id="stats_me",
            summary="My statistics")
def my_stats(request: HttpRequest) -> UserStatsOut:
    return _out(user_stats(user_id=current_user(request).pk))


@router.get("/users/{user_id}", response={200: UserStatsOut, **ERRORS},
            operation_id="stats_user", summary="Any member's statistics (Support and above)")
def any_stats(request: HttpRequest, user_id: PathId) -> UserStatsOut:
    return _out(stats_user_for_viewer(viewer=current_user(request), user_id=user_id))


@router.get("/history", response={200: HistoryOut, **ERRORS}, operation_id="stats_history",
            summary="Registrations, redemptions and active subscriptions per day and week "
                    "(staff)")
def history(request: HttpRequest, query: Query[HistoryIn]) -> HistoryOut:
    data: dict[str, list[PeriodStats]] = stats_history_for_viewer(
        viewer=current_user(request), days=query.days, weeks=query.weeks)
    return HistoryOut.model_validate(data, from_attributes=True)
