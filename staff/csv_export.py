"""Streaming CSV export of any filtered changelist, as a link (current filters) and an action.

Rows are read in chunks and written as they go, so exporting a million rows holds neither the
rows nor the file in memory. Cells that a spreadsheet would run as a formula are defused.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Model, QuerySet
from django.http import (
    HttpRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.errors import ZspbError
from core.models import User
from core.services.logs import Category, log_event

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000


class CsvColumn(NamedTuple):
    header: str
    value: Callable[[Any], object]


def safe_cell(value: object) -> str:
    """The cell text; text that could start a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)  # a number is never a formula, even a negative one
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else \
            value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # byte-order mark: spreadsheets then read the UTF-8 (Cyrillic) correctly
    yield writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_response(
    *, filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; "
                                                                           "charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # exports may hold key codes or personal data
    return response


def csv_of(
    *, filename: str, columns: Sequence[CsvColumn], objects: Iterable[Any]
) -> StreamingHttpResponse:
    rows = ([column.value(obj) for column in columns] for obj in objects)
    return csv_response(filename=filename, header=[str(c.header) for c in columns], rows=rows)


def field_column(name: str, header: str | None = None) -> CsvColumn:
    """A column reading a (dotted) attribute; choices show their stored value."""

    def value(obj: Any) -> object:
        for part in name.split("."):
            obj = getattr(obj, part, None) if obj is not None else None
        return obj

    return CsvColumn(header or name.replace(".", "_"), value)


class CsvExportMixin:
    """Mix into a StaffModelAdmin: an "Export CSV" link carrying the current filters, and an
    "Export selected as CSV" action. Set `csv_columns` (or override get_csv_columns)."""

    csv_columns: Sequence[CsvColumn] = ()
    csv_filename = "export"
    list_before_template = "staff/csv_export_link.html"

    # Provided by ModelAdmin.
    model: type[Model]
    admin_site: admin.AdminSite
    has_view_permission: Callable[..., bool]
    get_changelist_instance: Callable[[HttpRequest], Any]

    def has_csv_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_csv_columns(self, request: HttpRequest) -> Sequence[CsvColumn]:
        return self.csv_columns

    def csv_export(self, request: HttpRequest, queryset: QuerySet[Any], *, scope: str
                   ) -> StreamingHttpResponse:
        """Journal the export and stream it. Override to route it through a domain service."""
        actor = request.user
        assert isinstance(actor, User)
        log_event(category=Category.MODERATION, action="admin.export", actor=actor,
                  data={"model": self.model._meta.label, "scope": scope[:500]})
        return csv_of(filename=self.csv_export_filename(), columns=self.get_csv_columns(request),
                      objects=queryset.iterator(chunk_size=CHUNK))

    def csv_export_filename(self) -> str:
        return f"{self.csv_filename}-{timezone.localtime():%Y%m%d-%H%M%S}.csv"

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        """GET with the changelist's own query string: exports every row the list matches."""
        if not self.has_csv_export_permission(request):
            raise DjangoPermissionDenied
        changelist_url = reverse(self._csv_url_name("changelist"), current_app=self.admin_site.name)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            messages.error(request, _("Those filters are not valid."))
            return HttpResponseRedirect(changelist_url)
        try:
            return self.csv_export(request, changelist.queryset,
                                   scope=f"filters: {request.GET.urlencode()}")
        except ZspbError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(changelist_url)

    @admin.action(description=_("Export selected as CSV"), permissions=["csv_export"])
    def export_selected_csv(self, request: HttpRequest, queryset: QuerySet[Any]
                            ) -> HttpResponseBase | None:
        across = request.POST.get("select_across") == "1"
        scope = f"{'all matching' if across else 'selection'}: {request.GET.urlencode()}"
        try:
            return self.csv_export(request, queryset, scope=scope)
        except ZspbError as exc:
            messages.error(request, exc.message)
            return None

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
                        ) -> TemplateResponse:
        extra_context = {**(extra_context or {}),
                         "csv_export_allowed": self.has_csv_export_permission(request),
                         "csv_export_url": reverse(self._csv_url_name("export_csv"),
                                                   current_app=self.admin_site.name)}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def get_urls(self) -> list[URLPattern]:
        own = [path("export.csv", self.admin_site.admin_view(self.export_csv_view),
                    name=self._csv_url_name("export_csv").partition(":")[2])]
        return own + super().get_urls()  # type: ignore[misc]

    def _csv_url_name(self, view: str) -> str:
        opts = self.model._meta
        return f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}"
