"""Loader releases: upload through release_create (sha256 and size computed from the bytes),
publish and withdraw through release_publish, CSV export."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from unfold.decorators import display
from unfold.widgets import (
    UnfoldAdminFileFieldWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from core.errors import ZspbError
from core.models import LoaderRelease
from core.services.releases import release_create, release_publish
from staff.actions import actor_of, capped, form_page, run_each
from staff.base import StaffModelAdmin, staff_can
from staff.csv_export import CsvExportMixin, field_column


class ReleaseUploadForm(forms.Form):
    version = forms.CharField(label=_("Version"), max_length=32,
                              widget=UnfoldAdminTextInputWidget)
    file = forms.FileField(label=_("Loader file"), widget=UnfoldAdminFileFieldWidget)
    changelog = forms.CharField(label=_("Changelog"), required=False,
                                widget=UnfoldAdminTextareaWidget(attrs={"rows": 8}))

    def clean_file(self) -> Any:
        uploaded = self.cleaned_data["file"]
        limit = settings.LOADER_MAX_UPLOAD_MB * 1024 * 1024
        if uploaded.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s; the limit is %(limit)s (LOADER_MAX_UPLOAD_MB).")
                % {"size": filesizeformat(uploaded.size), "limit": filesizeformat(limit)})
        return uploaded


@admin.register(LoaderRelease)
class LoaderReleaseAdmin(CsvExportMixin, StaffModelAdmin):
    view_capability = None
    add_capability = "manage_loader"
    list_display = ["version", "published", "size_text", "sha256_short", "uploaded_by",
                    "created_at"]
    list_filter = ["published"]
    list_select_related = ["uploaded_by"]
    fields = ["version", "published", "file", "size_text", "sha256", "changelog", "uploaded_by",
              "created_at"]
    readonly_fields = fields
    actions = ["publish", "unpublish", "export_selected_csv"]
    csv_filename = "releases"
    csv_columns = [field_column("version"), field_column("published"), field_column("size"),
                   field_column("sha256"), field_column("uploaded_by_id"),
                   field_column("created_at")]

    def has_manage_loader_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, "manage_loader")

    @display(description=_("size"), ordering="size")
    def size_text(self, obj: LoaderRelease) -> str:
        return filesizeformat(obj.size)

    @display(description="sha256")
    def sha256_short(self, obj: LoaderRelease) -> str:
        return f"{obj.sha256[:16]}..."

    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Upload through release_create, which computes the sha256 and size from the bytes."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReleaseUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                release = release_create(actor=actor_of(request),
                                         uploaded_file=form.cleaned_data["file"],
                                         version=form.cleaned_data["version"],
                                         changelog=form.cleaned_data["changelog"])
            except ZspbError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _("Release %(version)s uploaded (unpublished); "
                                            "sha256 %(sha)s.") % {"version": release.version,
                                                                  "sha": release.sha256})
                return HttpResponseRedirect(reverse("admin:core_loaderrelease_changelist"))
        return form_page(request, self, title=_("Upload a loader release"), form=form,
                          submit_label=_("Upload"),
                          intro=_("Limit: %(mb)s MB. The release stays unpublished until you "
                                  "publish it.") % {"mb": settings.LOADER_MAX_UPLOAD_MB},
                          cancel_url=reverse("admin:core_loaderrelease_changelist"))

    def _publish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease],
                 published: bool) -> None:
        releases = capped(request, queryset.order_by("pk"))
        if releases is not None:
            actor = actor_of(request)
            run_each(request, releases,
                     lambda r: release_publish(actor=actor, release_id=r.pk,
                                               published=published),
                     done=_("%(count)d releases published.") if published
                     else _("%(count)d releases withdrawn."))

    @admin.action(description=_("Publish selected releases"), permissions=["manage_loader"])
    def publish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease]) -> None:
        self._publish(request, queryset, True)

    @admin.action(description=_("Unpublish selected releases"), permissions=["manage_loader"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[LoaderRelease]) -> None:
        self._publish(request, queryset, False)


