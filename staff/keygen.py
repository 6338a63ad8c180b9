"""Bulk key generation page: the form, the job page with progress, the batch's codes as CSV.

Small batches are generated within the request; larger ones by a django-q2 task whose
progress record (KeyGenerationJob) the job page polls through a small JSON endpoint.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.core.validators import MaxValueValidator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminRadioSelectWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminSplitDateTimeWidget,
    UnfoldAdminTextInputWidget,
)

from core.errors import ZspbError
from core.models import KeyGenerationJob, LicenseKey, Product
from core.services.keys import (
    INLINE_MAX,
    key_batch_export,
    key_codes_visible,
    key_generation_start,
)
from staff.actions import actor_of
from staff.base import staff_can
from staff.csv_export import CsvColumn, csv_of

UNITS = {"days": timedelta(days=1), "hours": timedelta(hours=1)}
RECENT_JOBS = 10


def format_duration(duration: timedelta) -> str:
    """30 days, 12 h, 1 day 6 h: whole hours are all a key's duration needs to say."""
    days, seconds = duration.days, duration.seconds
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(gettext("%(n)d h") % {"n": hours})
    if minutes and not days:
        parts.append(gettext("%(n)d min") % {"n": minutes})
    return " ".join(parts) or "0"


class KeyGenerationForm(forms.Form):
    product = forms.ModelChoiceField(
        label=_("Product"), queryset=Product.objects.filter(is_active=True),
        widget=UnfoldAdminSelectWidget, empty_label=None,
    )
    duration_value = forms.IntegerField(label=_("Duration"), min_value=1, max_value=3650 * 24,
                                        initial=30, widget=UnfoldAdminIntegerFieldWidget)
    duration_unit = forms.ChoiceField(label=_("Unit"), choices=[("days", _("days")),
                                                                ("hours", _("hours"))],
                                      initial="days", widget=UnfoldAdminRadioSelectWidget)
    count = forms.IntegerField(label=_("Number of keys"), min_value=1, initial=10,
                               widget=UnfoldAdminIntegerFieldWidget)
    note = forms.CharField(label=_("Note"), max_length=200, required=False,
                           widget=UnfoldAdminTextInputWidget)
    redeem_by = forms.SplitDateTimeField(label=_("Redeem by (optional)"), required=False,
                                         widget=UnfoldAdminSplitDateTimeWidget)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = settings.ZSPB.key_batch_max
        count = self.fields["count"]
        assert isinstance(count, forms.IntegerField)
        # The limit comes from config.yaml, read when the form is made rather than imported.
        count.max_value = limit
        count.validators.append(MaxValueValidator(limit))
        count.widget.attrs["max"] = str(limit)
        count.help_text = _("1 to %(limit)s. Up to %(inline)s are made at once; larger batches "
                            "run in the background.") % {"limit": limit, "inline": INLINE_MAX}

    def duration(self) -> timedelta:
        return int(self.cleaned_data["duration_value"]) * UNITS[self.cleaned_data["duration_unit"]]


def _url(model_admin: ModelAdmin[Any], view: str, *args: object) -> str:
    return reverse(f"{model_admin.admin_site.name}:core_licensekey_{view}", args=args)


def _context(model_admin: ModelAdmin[Any], request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**model_admin.admin_site.each_context(request), "opts": LicenseKey._meta, **extra}


def _ensure_job_access(request: HttpRequest) -> None:
    # A batch page shows and exports codes: the same people who may see codes in the list.
    if not key_codes_visible(actor_of(request)):
        raise PermissionDenied


def generate_view(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    if not staff_can(request, "generate_keys"):
        raise PermissionDenied
    form = KeyGenerationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = key_generation_start(actor=actor_of(request), product=data["product"],
                                       duration=form.duration(), count=data["count"],
                                       note=data["note"], redeem_by=data["redeem_by"])
        except ZspbError as exc:
            messages.error(request, exc.message)
        else:
            if job.finished:
                messages.success(request, _("%(count)s keys generated.") % {"count": job.count})
            else:
                messages.info(request, _("Generating %(count)s keys in the background.")
                              % {"count": job.count})
            return HttpResponseRedirect(_url(model_admin, "keygen_job", job.pk))
    return TemplateResponse(request, "staff/form_page.html", _context(
        model_admin, request, title=_("Generate keys"), form=form,
        submit_label=_("Generate"), submit_name="generate",
        cancel_url=_url(model_admin, "changelist"),
        intro=_("Free keys do not age: a key's duration starts when it is redeemed."),
        links_title=_("Your recent batches"), links=_recent_jobs(model_admin, request),
    ))


def _recent_jobs(model_admin: ModelAdmin[Any], request: HttpRequest) -> list[tuple[str, str]]:
    # A background batch can be found again after leaving its page.
    jobs = (KeyGenerationJob.objects.filter(created_by=actor_of(request))
            .select_related("product").order_by("-created_at", "-id")[:RECENT_JOBS])
    return [(_url(model_admin, "keygen_job", job.pk),
             f"{timezone.localtime(job.created_at):%Y-%m-%d %H:%M} - {job.product}: "
             f"{job.done}/{job.count} ({job.get_status_display()})") for job in jobs]


def job_view(model_admin: ModelAdmin[Any], request: HttpRequest, job_id: int) -> HttpResponse:
    _ensure_job_access(request)
    job = get_object_or_404(KeyGenerationJob.objects.select_related("product"), pk=job_id)
    return TemplateResponse(request, "staff/keygen_job.html", _context(
        model_admin, request, title=_("Key batch"), job=job,
        duration_text=format_duration(job.duration),
        can_export=True,
        status_url=_url(model_admin, "keygen_status", job.pk),
        codes_url=_url(model_admin, "keygen_codes", job.pk),
        list_url=f"{_url(model_admin, 'changelist')}?batch={job.batch}",
        generate_url=_url(model_admin, "generate_keys_page"),
    ))


def job_status_view(model_admin: ModelAdmin[Any], request: HttpRequest, job_id: int
                    ) -> JsonResponse:
    _ensure_job_access(request)
    job = get_object_or_404(KeyGenerationJob, pk=job_id)
    return JsonResponse({"status": job.status, "done": job.done, "count": job.count,
                         "percent": job.percent, "finished": job.finished,
                         "batch": str(job.batch), "error": job.error})


CODE_COLUMNS = (
    CsvColumn("code", lambda key: key.code),
    CsvColumn("product", lambda key: key.product.slug),
    CsvColumn("duration", lambda key: format_duration(key.duration)),
    CsvColumn("duration_seconds", lambda key: int(key.duration.total_seconds())),
    CsvColumn("redeem_by", lambda key: key.redeem_by),
    CsvColumn("note", lambda key: key.note),
    CsvColumn("batch", lambda key: str(key.batch)),
)


def job_codes_view(model_admin: ModelAdmin[Any], request: HttpRequest, job_id: int
                   ) -> HttpResponseBase:
    _ensure_job_access(request)
    job = get_object_or_404(KeyGenerationJob, pk=job_id)
    if not job.finished:
        messages.warning(request, _("The batch is still being generated."))
        return HttpResponseRedirect(_url(model_admin, "keygen_job", job.pk))
    try:
        keys = key_batch_export(actor=actor_of(request), batch=job.batch)
    except ZspbError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(_url(model_admin, "keygen_job", job.pk))
    stamp = timezone.localtime(job.created_at)
    return csv_of(filename=f"keys-{stamp:%Y%m%d}-{str(job.batch)[:8]}.csv",
                  columns=CODE_COLUMNS, objects=keys)


def urls(model_admin: ModelAdmin[Any]) -> list[URLPattern]:
    """The job pages, under the key changelist (the form itself is an unfold list action)."""
    site = model_admin.admin_site

    def bind(view: Any) -> Any:
        def bound(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            return view(model_admin, request, **kwargs)

        return site.admin_view(bound)

    return [
        path("generate/<int:job_id>/", bind(job_view), name="core_licensekey_keygen_job"),
        path("generate/<int:job_id>/status/", bind(job_status_view),
             name="core_licensekey_keygen_status"),
        path("generate/<int:job_id>/codes.csv", bind(job_codes_view),
             name="core_licensekey_keygen_codes"),
    ]
