"""The staff admin site: unfold's site where every page needs a verified second factor.

A staff member who passed the password but not TOTP is sent to the verification step (or to
enrolment when they have no authenticator yet) from every admin URL, the login page included;
non-staff users get the ordinary admin login refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, URLResolver, path
from unfold.sites import UnfoldAdminSite

from staff import twofactor
from staff.twofactor import is_verified


class StaffAdminSite(UnfoldAdminSite):
    index_template = "staff/dashboard.html"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and is_verified(user))

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., Any]:
        # Every ModelAdmin, custom and action URL is built through admin_view, so gating here
        # covers pages registered later by any module (admin-B's too).
        protected = super().admin_view(view, cacheable)

        def gate(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            step = twofactor.pending_step(request, site=self)
            if step is not None:
                return step
            response: HttpResponse = protected(request, *args, **kwargs)
            return response

        return update_wrapper(gate, protected)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # Only GET: a POST logs in (possibly as someone else) and then meets the gate anyway.
        if request.method == "GET":
            user = request.user
            if user.is_authenticated and not user.is_staff:
                # Members have their own login and pages; the staff login is not for them.
                return redirect("home")
            step = twofactor.pending_step(request, site=self)
            if step is not None:
                return step
        return super().login(request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Not wrapped by admin_view: these pages are how an unverified staff member gets in.
        otp_urls: list[URLResolver | URLPattern] = [
            path("otp/verify/", self._otp(twofactor.verify_view), name="otp_verify"),
            path("otp/enrol/", self._otp(twofactor.enrol_view), name="otp_enrol"),
            path("otp/cancel/", self._otp(twofactor.cancel_view), name="otp_cancel"),
        ]
        return otp_urls + super().get_urls()

    def _otp(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        def bound(request: HttpRequest) -> HttpResponse:
            return view(request, site=self)

        return update_wrapper(bound, view)
