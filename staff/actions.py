"""Shared machinery of staff admin actions: intermediate forms, confirmation pages, reports.

An action only parses input and calls one service per selected object; a ZspbError becomes an
error message naming the object, and a summary says how many succeeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.widgets import (
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
)

from core.errors import ZspbError
from core.models import User

if TYPE_CHECKING:  # a dev-only package: production installs have no django-stubs-ext
    from django_stubs_ext import StrOrPromise

# Actions loop over services one object at a time; beyond this a branch or batch tool is the
# right instrument, not a changelist selection.
ACTION_MAX = 1000

DURATIONS: dict[str, timedelta | None] = {
    "": None,
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}


class BanForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500,
                             widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}))
    duration = forms.ChoiceField(
        label=_("Duration"), required=False, widget=UnfoldAdminSelectWidget,
        choices=[("", _("Permanent")), ("1h", _("1 hour")), ("1d", _("1 day")),
                 ("3d", _("3 days")), ("7d", _("7 days")), ("30d", _("30 days")),
                 ("90d", _("90 days")), ("365d", _("1 year"))],
    )

    def ends_at(self) -> Any:
        length = DURATIONS[self.cleaned_data.get("duration") or ""]
        return timezone.now() + length if length else None


class PasswordForm(forms.Form):
    password1 = forms.CharField(label=_("New password"), strip=False,
                                widget=UnfoldAdminPasswordWidget)
    password2 = forms.CharField(label=_("Repeat the new password"), strip=False,
                                widget=UnfoldAdminPasswordWidget)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") != data.get("password2"):
            raise ValidationError(_("The two passwords differ."))
        return data


class ConfirmForm(forms.Form):
    """No fields: the page itself is the confirmation."""


def action_page(
    request: HttpRequest,
    model_admin: Any,
    *,
    title: StrOrPromise,
    intro: StrOrPromise,
    form: forms.Form,
    objects: Iterable[Model] = (),
    action: str | None = None,
    selected: Iterable[Any] = (),
    post_url: str | None = None,
    submit: StrOrPromise | None = None,
    danger: bool = False,
) -> TemplateResponse:
    """An intermediate page that posts back with `apply` set.

    With `action`, it posts to the changelist as the same admin action with the same selection
    (Django re-runs the action, which now finds `apply`); otherwise to `post_url`.
    """
    opts = model_admin.model._meta
    shown = list(objects)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "form": form,
        "objects": shown[:50],
        "objects_more": max(len(shown) - 50, 0),
        "action": action,
        "selected": [str(pk) for pk in selected],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "post_url": post_url or request.get_full_path(),
        "submit_label": submit or title,
        "danger": danger,
        "opts": opts,
        "app_label": opts.app_label,
        "media": model_admin.media + form.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "staff/action_page.html", context)


def form_page(request: HttpRequest, model_admin: Any, **context: Any) -> TemplateResponse:
    """A page with one form that is not an action: an upload, a creation."""
    return TemplateResponse(request, "staff/form_page.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.model._meta,
        **context,
    })


def actor_of(request: HttpRequest) -> User:
    """The staff member behind an admin request (admin views run only for one)."""
    user = request.user
    assert isinstance(user, User)
    return user


def applied(request: HttpRequest) -> bool:
    return request.method == "POST" and "apply" in request.POST


def capped(request: HttpRequest, objects: Iterable[Any], *,
           limit: int = ACTION_MAX) -> list[Any] | None:
    """The selection as a list, or None (with an error message) when it exceeds `limit`.

    A selection is refused whole rather than truncated: acting on an arbitrary part of it
    would look like success. A QuerySet is read at most `limit` + 1 rows deep.
    """
    rows = list(objects[:limit + 1] if isinstance(objects, QuerySet) else objects)
    if len(rows) > limit:
        messages.error(request, _("Select at most %(max)d rows for this action.")
                       % {"max": limit})
        return None
    return rows


def run_each(
    request: HttpRequest,
    objects: Iterable[Any],
    call: Callable[[Any], object],
    *,
    done: StrOrPromise,
) -> int:
    """Call the service for each object; report successes once and failures by reason.

    `done` is a translated "%(count)d ..." message. Returns the number of successes.
    """
    succeeded = 0
    failures: dict[str, list[str]] = defaultdict(list)
    for obj in objects:
        try:
            call(obj)
        except ZspbError as exc:
            failures[str(exc.message)].append(str(obj))
        else:
            succeeded += 1
    if succeeded:
        messages.success(request, done % {"count": succeeded})
    for message, names in failures.items():
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        messages.error(request, f"{message} ({shown})")
    return succeeded

