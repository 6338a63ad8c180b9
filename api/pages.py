"""Server-rendered pages for members. They parse input, call one service, render the result."""

from __future__ import annotations

from django import forms
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from api.net import client_ip
from core.errors import ZspbError
from core.services.users import user_register


class RegisterForm(forms.Form):
    invite = forms.CharField(max_length=64, label="Invite code")
    username = forms.CharField(max_length=32)
    email = forms.EmailField(required=False, max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128)


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RegisterForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = user_register(invite_code=data["invite"], username=data["username"],
                                     password=data["password"], email=data["email"],
                                     ip=client_ip(request))
            except ZspbError as exc:
                fields = exc.details.get("fields")
                if isinstance(fields, dict) and "password" in fields:
                    form.add_error("password", fields["password"])
                else:
                    form.add_error(None, exc.message)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("home")
    else:
        form = RegisterForm(initial={"invite": request.GET.get("invite", "")[:64]})
    return render(request, "pages/register.html", {"form": form})


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/home.html")
