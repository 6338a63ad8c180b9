"""Member login, logout and registration by invite: plain forms that work without scripts."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from api.net import client_ip
from core.errors import ZspbError
from core.models import User
from core.services.auth import user_login, user_logout
from core.services.users import user_register


class LoginForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username",
                                                             "autocapitalize": "none"}))
    password = forms.CharField(label=_("Password"), max_length=128, strip=False,
                               widget=forms.PasswordInput(
                                   attrs={"autocomplete": "current-password"}))


class RegisterForm(forms.Form):
    invite = forms.CharField(label=_("Invite code"), max_length=64)
    username = forms.CharField(label=_("Username"), max_length=32,
                               help_text=_("3-32 letters, digits, dots, dashes or underscores."),
                               widget=forms.TextInput(attrs={"autocomplete": "username",
                                                             "autocapitalize": "none"}))
    email = forms.EmailField(label=_("E-mail"), required=False, max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label=_("Password"), max_length=128, strip=False,
                               help_text=_("At least 10 characters, not a common password."),
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


def _next_url(request: HttpRequest, user: User) -> str:
    if user.is_staff:
        return "/admin/"  # staff work in the admin, which asks for their second factor
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return wanted
    return reverse("home")


# Refusals that concern one field although the service names none.
_FIELD_OF_CODE = {"invite_invalid": "invite"}


def _apply_error(form: forms.Form, exc: ZspbError) -> None:
    """Field errors next to their fields; anything else above the form."""
    fields = exc.details.get("fields")
    if not isinstance(fields, dict):
        fields = {_FIELD_OF_CODE[exc.code]: "invalid"} if exc.code in _FIELD_OF_CODE else {}
    placed = False
    for name, problem in fields.items():
        if name not in form.fields:
            continue
        # A service names the problem either with a word ("invalid", "taken") or with the
        # validators' own messages.
        messages = problem if isinstance(problem, list) else [
            exc.message if problem in ("invalid", "taken", "exclusive") else problem]
        for message in messages:
            form.add_error(name, str(message))
        placed = True
    if not placed:
        form.add_error(None, exc.message)


@require_http_methods(["GET", "POST"])
def login_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and isinstance(request.user, User):
        return redirect(_next_url(request, request.user))
    banned: dict[str, object] | None = None
    if request.method == "POST":
        form = LoginForm(request.POST)
        if form.is_valid():
            ip = client_ip(request)
            try:
                user = user_login(request=request, username=form.cleaned_data["username"],
                                  password=form.cleaned_data["password"], ip=ip)
            except ZspbError as exc:
                if exc.code == "user_banned":
                    ends_at = exc.details.get("ends_at")
                    banned = {"reason": exc.details.get("reason"),
                              "ends_at": datetime.fromisoformat(ends_at) if ends_at else None}
                else:
                    form.add_error(None, exc.message)
            else:
                return redirect(_next_url(request, user))
    else:
        form = LoginForm()
    status = 403 if banned else 200
    return render(request, "pages/login.html",
                  {"form": form, "banned": banned, "next": request.GET.get("next", "")[:500],
                   "was_banned": request.GET.get("banned") == "1"}, status=status)


def locked_login_page(request: HttpRequest, message: str) -> HttpResponse:
    """What django-axes answers on /login while the username and address are locked out."""
    form = LoginForm(request.POST or None)
    form.is_valid()
    form.add_error(None, message)
    return render(request, "pages/login.html",
                  {"form": form, "banned": None, "next": request.POST.get("next", "")[:500]},
                  status=429)


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    if isinstance(request.user, User):
        user_logout(request=request, user=request.user)
    return redirect("login")


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RegisterForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            ip = client_ip(request)
            try:
                user = user_register(invite_code=data["invite"], username=data["username"],
                                     password=data["password"], email=data["email"], ip=ip)
            except ZspbError as exc:
                _apply_error(form, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("home")
    else:
        form = RegisterForm(initial={"invite": request.GET.get("invite", "")[:64]})
    return render(request, "pages/register.html", {"form": form})
