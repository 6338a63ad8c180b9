"""Second-factor pages of the staff admin: verify a token, enrol an authenticator, cancel.

The password login stays unfold's own page; these pages follow it, because unfold's login
template renders only the username and password fields.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from unfold.widgets import UnfoldAdminTextInputWidget

from core.errors import ZspbError
from core.models import User
from core.selectors.twofactor import twofactor_is_enrolled
from core.services.twofactor import (
    twofactor_confirm_enrolment,
    twofactor_start_enrolment,
    twofactor_verify,
)

if TYPE_CHECKING:
    from staff.site import StaffAdminSite


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code"),
        max_length=32,
        help_text=_("The 6-digit code of your authenticator app, or one backup code."),
        widget=UnfoldAdminTextInputWidget(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )


def is_verified(user: Any) -> bool:
    """OTPMiddleware installs is_verified(); without it nobody counts as verified."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def _staff_user(request: HttpRequest) -> User | None:
    user = request.user
    if isinstance(user, User) and user.is_active and user.is_staff:
        return user
    return None


def _next_url(request: HttpRequest, site: StaffAdminSite) -> str:
    wanted = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("admin:index", current_app=site.name)


def pending_step(request: HttpRequest, *, site: StaffAdminSite) -> HttpResponse | None:
    """Where an authenticated staff member without a verified second factor must go.

    None when nothing is pending: anonymous and non-staff users (the admin refuses them on
    its own) and verified staff.
    """
    user = _staff_user(request)
    if user is None or is_verified(user):
        return None
    name = "otp_verify" if twofactor_is_enrolled(user=user) else "otp_enrol"
    url = reverse(f"admin:{name}", current_app=site.name)
    wanted = request.get_full_path()
    if request.method == "GET" and not wanted.startswith(url):
        if request.path == reverse("admin:login", current_app=site.name):
            wanted = request.GET.get(REDIRECT_FIELD_NAME, "")
        if wanted:
            url = f"{url}?{urlencode({REDIRECT_FIELD_NAME: wanted})}"
    return HttpResponseRedirect(url)


def _context(request: HttpRequest, site: StaffAdminSite, **extra: Any) -> dict[str, Any]:
    return {
        **site.each_context(request),
        "next": _next_url(request, site),
        "next_field": REDIRECT_FIELD_NAME,
        **extra,
    }


def _login_redirect(site: StaffAdminSite) -> HttpResponse:
    return HttpResponseRedirect(reverse("admin:login", current_app=site.name))


@never_cache
@csrf_protect
def verify_view(request: HttpRequest, *, site: StaffAdminSite) -> HttpResponse:
    user = _staff_user(request)
    if user is None:
        return _login_redirect(site)
    if is_verified(user):
        return HttpResponseRedirect(_next_url(request, site))
    if not twofactor_is_enrolled(user=user):
        return HttpResponseRedirect(reverse("admin:otp_enrol", current_app=site.name))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = twofactor_verify(user=user, token=form.cleaned_data["token"])
        except ZspbError as exc:
            form.add_error("token", exc.message)
        else:
            # A new session key once fully authenticated: a key planted before login is useless.
            request.session.cycle_key()
            otp_login(request, device)
            return HttpResponseRedirect(_next_url(request, site))
    return render(request, "staff/otp_verify.html",
                  _context(request, site, form=form, title=_("Two-factor check")))


def qr_data_uri(text: str) -> str:
    """The QR code of `text` as an inline SVG data URI (no file, no external service)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    svg: bytes = image.to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


@never_cache
@csrf_protect
def enrol_view(request: HttpRequest, *, site: StaffAdminSite) -> HttpResponse:
    user = _staff_user(request)
    if user is None:
        return _login_redirect(site)
    if twofactor_is_enrolled(user=user):
        return HttpResponseRedirect(reverse("admin:otp_verify", current_app=site.name))
    form = TokenForm(request.POST or None)
    form.fields["token"].help_text = _("The 6-digit code your authenticator app shows now.")
    if request.method == "POST" and form.is_valid():
        try:
            enrolment = twofactor_confirm_enrolment(user=user, token=form.cleaned_data["token"])
        except ZspbError as exc:
            form.add_error("token", exc.message)
        else:
            request.session.cycle_key()
            otp_login(request, enrolment.device)
            # Rendered in the POST's answer, never stored: the codes are shown exactly once.
            return render(request, "staff/otp_backup_codes.html",
                          _context(request, site, codes=enrolment.backup_codes,
                                   title=_("Backup codes")))
    try:
        device = twofactor_start_enrolment(user=user)
    except ZspbError as exc:
        form.add_error(None, exc.message)
        return render(request, "staff/otp_verify.html", _context(request, site, form=form))
    secret = base64.b32encode(device.bin_key).decode("ascii")
    return render(request, "staff/otp_enrol.html", _context(
        request, site, form=form, title=_("Set up two-factor login"),
        qr=qr_data_uri(device.config_url),
        secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
    ))


@never_cache
@csrf_protect
@require_POST
def cancel_view(request: HttpRequest, *, site: StaffAdminSite) -> HttpResponse:
    """Log out from the second-factor step (admin:logout itself needs the second factor)."""
    logout(request)
    return _login_redirect(site)
