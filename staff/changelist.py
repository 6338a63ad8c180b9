"""Changelist pieces for large tables: bounded counts and filters that never list a whole table.

A dropdown of every batch or every user would read the whole table on each page view, so those
filters are text inputs resolved through an indexed column.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeDateFilter, TextFilter
from unfold.utils import parse_date_str

# Below this many rows a count is exact (and cheap); above it an estimate is shown.
EXACT_COUNT_LIMIT = 10_000
# From this offset on, a page is read in two steps (see EstimatedCountPaginator._rows).
DEFERRED_JOIN_OFFSET = 2_000


def _reltuples(model: type[Model], using: str) -> int:
    """PostgreSQL's planner estimate of the table's rows (-1 when never analysed)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                       [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def _plan_rows(queryset: QuerySet[Any]) -> int:
    """The planner's row estimate for a filtered query (PostgreSQL)."""
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Never counts more than EXACT_COUNT_LIMIT rows.

    Unfiltered on PostgreSQL: pg_class.reltuples (no query over the table). Otherwise a count
    capped by LIMIT; when the cap is reached, the planner's estimate (PostgreSQL) or the cap.
    Such a count is approximate either way, so pages are not bounded by it: a page past it is
    read like any other, and each page read moves the count to what it proved (one more page
    while a page is full, the exact total once the end is reached). Every row stays reachable
    by paging, on SQLite too, without a full count.
    """

    approximate = False  # set by count: the count is an estimate or the cap

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        using = queryset.db
        postgres = connections[using].vendor == "postgresql"
        if postgres and not queryset.query.where:
            estimate = _reltuples(queryset.model, using)
            if estimate >= EXACT_COUNT_LIMIT:
                self.approximate = True
                return estimate
        # values("pk") keeps annotations (subqueries) out of the counted rows.
        capped = queryset.order_by().values("pk")[:EXACT_COUNT_LIMIT].count()
        if capped < EXACT_COUNT_LIMIT:
            return capped
        self.approximate = True
        return max(capped, _plan_rows(queryset)) if postgres else capped

    def validate_number(self, number: Any) -> int:
        if not (self.count and self.approximate):
            return super().validate_number(number)
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger(_("That page number is not an integer")) from exc
        if number < 1:
            raise EmptyPage(_("That page number is less than 1"))
        return number

    def page(self, number: Any) -> Page:
        if not (self.count and self.approximate):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        # One row more than the page tells whether another page follows.
        rows = self._rows(bottom, self.per_page + 1)
        more = len(rows) > self.per_page
        rows = rows[:self.per_page]
        if not rows and number > 1:
            raise EmptyPage(_("That page contains no results"))
        self._learn(bottom + len(rows) + (1 if more else 0), exact=not more)
        return Page(rows, number, self)

    def _rows(self, bottom: int, limit: int) -> list[Any]:
        """The rows at OFFSET `bottom`. Far in, the offset is skipped over primary keys only
        (an index-only walk), then the page's rows are read with their joins and
        subqueries: PostgreSQL computes a row's select list even for the rows an OFFSET
        skips, so page 500 would run the joins and annotations 25,000 times."""
        queryset = self.object_list
        if bottom < DEFERRED_JOIN_OFFSET or not isinstance(queryset, QuerySet):
            return list(queryset[bottom:bottom + limit])
        keys = list(queryset.values_list("pk", flat=True)[bottom:bottom + limit])
        found = {row.pk: row for row in queryset.filter(pk__in=keys)}
        return [found[key] for key in keys if key in found]

    def _learn(self, rows: int, *, exact: bool) -> None:
        """What a page read proved: at least `rows` rows, or exactly that many."""
        if exact or rows > self.count:
            self.__dict__["count"] = rows
            self.__dict__.pop("num_pages", None)
            self.approximate = not exact


class ScaledChangeListMixin:
    """For a ModelAdmin over a large table: estimated counts, no second full count."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Rendering the rows (unfold builds every cell's markup in Python) is most of a page's
    # server time at a million rows, not the queries: 50 rows keep a page well under 300 ms.
    list_per_page = 50


class UserRefFilter(TextFilter):
    """A user by id or exact username, through the FK's index. Subclass and set `field`."""

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if value.isdigit():
            return queryset.filter(**{f"{self.field}_id": int(value)})
        return queryset.filter(**{f"{self.field}__username": value})


def user_filter(field: str, title: str) -> type[UserRefFilter]:
    """A text filter on the user FK `field` (parameter name = field)."""
    return type(f"{field.title()}Filter", (UserRefFilter,),
                {"field": field, "title": title, "parameter_name": field})


class UUIDFilter(TextFilter):
    """An exact UUID column (a batch); a malformed value matches nothing."""

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        try:
            return queryset.filter(**{self.field: uuid.UUID(value)})
        except ValueError:
            return queryset.none()


class PrefixTextFilter(TextFilter):
    """Exact value, or a prefix when it ends with `*` (`key.*`)."""

    field = ""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        if value.endswith("*"):
            return queryset.filter(**{f"{self.field}__startswith": value.rstrip("*")})
        return queryset.filter(**{self.field: value})


class DayRangeFilter(RangeDateFilter):
    """A date range on a datetime column; both ends inclusive, whole days in the site's zone."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        filters: dict[str, dt.datetime] = {}
        start = self._day(f"{self.parameter_name}_from")
        end = self._day(f"{self.parameter_name}_to")
        if start is not None:
            filters[f"{self.field_path}__gte"] = start
        if end is not None:
            filters[f"{self.field_path}__lt"] = end + dt.timedelta(days=1)
        return queryset.filter(**filters)

    def _day(self, key: str) -> dt.datetime | None:
        raw = self.used_parameters.get(key)
        if not isinstance(raw, str) or not raw:
            return None
        day = parse_date_str(raw)
        if day is None:
            return None
        return timezone.make_aware(dt.datetime.combine(day, dt.time.min))

