"""Every admin URL for every kind of caller, with the expected allow/deny computed from each
ModelAdmin's declared capabilities; and no admin page without the second factor.

The URL list is derived from admin.site._registry and the site's own URLs, so ModelAdmins added
later (by any module) are walked too.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from config.behaviour import CAPABILITIES
from core.models import LoaderRelease, LogEntry, Role, Subscription, User
from core.services.bans import ban_create
from core.services.keys import keys_generate
from core.services.logs import log_event
from staff.base import StaffModelAdmin
from staff.site import StaffAdminSite
from tests.factories import InviteFactory, UserFactory
from tests.staff.conftest import login_staff, totp_device

# "superuser" is the bootstrap administrator: role admin and is_superuser.
CALLERS = ["anonymous", "member", "support", "moderator", "admin", "superuser"]
STANDARD = {"changelist", "add", "change", "delete", "history", "autocomplete"}
# Custom URL parameters other than object_id, and the model whose first row fills them.
PARAM_MODELS = {"job_id": "core.keygenerationjob"}


def test_admin_site_is_the_two_factor_staff_site():
    assert isinstance(admin.site, StaffAdminSite)


def test_every_model_admin_declares_capabilities():
    """Third-party admins are re-registered on StaffModelAdmin (unfold + capabilities)."""
    plain = [model._meta.label for model, model_admin in admin.site._registry.items()
             if not isinstance(model_admin, StaffModelAdmin)]
    assert plain == []
    for model_admin in admin.site._registry.values():
        for kind in ("view", "add", "change", "delete"):
            capability = getattr(model_admin, f"{kind}_capability")
            assert capability in CAPABILITIES | {None, "__nobody__"}, (model_admin, kind)


@pytest.fixture
def world(roles: dict[str, Role], product: Any) -> dict[str, Any]:
    """One row of every model the admin shows."""
    boss = UserFactory.create(username="boss", role=roles["admin"], is_superuser=True)
    target = UserFactory.create(username="target", invited_by=boss, discord_id=1234,
                                discord_username="target#1")
    invitee = UserFactory.create(username="invitee", invited_by=target)
    InviteFactory.create(created_by=target)
    ban_create(actor=boss, user=UserFactory.create(username="banned"), reason="spam")
    keys_generate(actor=boss, product=product, duration=timedelta(days=30), count=2)
    now = timezone.now()
    Subscription.objects.create(user=target, product=product, started_at=now,
                                expires_at=now + timedelta(days=5))
    LoaderRelease.objects.create(version="1.0.0", file=ContentFile(b"MZ", name="loader.exe"),
                                 sha256="0" * 64, size=2, uploaded_by=boss)
    for category in ("user", "moderation", "error"):
        log_event(category=category, action=f"test.{category}", actor=boss, target=target)
    Group.objects.create(name="legacy")
    Schedule.objects.create(name="expire", func="core.tasks.expire_bans")
    for success in (True, False):
        Task.objects.create(id=uuid.uuid4().hex, name=f"task-{success}", func="core.tasks.x",
                            started=now, stopped=now, success=success)
    OrmQ.objects.create(key="zspb", payload="x", lock=now)
    AccessAttempt.objects.create(username="target", ip_address="198.51.100.7",
                                 user_agent="ua", failures_since_start=1)
    AccessLog.objects.create(username="target", ip_address="198.51.100.7", user_agent="ua")
    AccessFailureLog.objects.create(username="target", ip_address="198.51.100.7",
                                    user_agent="ua")
    _maybe_key_job(boss, product)
    return {"boss": boss, "target": target, "invitee": invitee}


def _maybe_key_job(boss: User, product: Any) -> None:
    try:
        from core.models.jobs import KeyGenerationJob
    except ImportError:  # not there yet
        return
    KeyGenerationJob.objects.create(product=product, duration=timedelta(days=1), count=1,
                                    created_by=boss)


def fake_request(user: Any) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _overridden(model_admin: Any, method: str) -> bool:
    """Whether a has_*_permission comes from somewhere else than StaffModelAdmin."""
    for klass in type(model_admin).__mro__:
        if method in vars(klass):
            return klass is not StaffModelAdmin
    return False


def allowed(model_admin: Any, kind: str, user: User) -> bool:
    """Expected access from the declared capability; overridden checks are asked directly."""
    method = f"has_{kind}_permission"
    if _overridden(model_admin, method):
        return bool(getattr(model_admin, method)(fake_request(user)))
    capability = getattr(model_admin, f"{kind}_capability")
    if capability is None:
        return True
    # A capability nobody holds is denied to superusers too.
    return capability != "__nobody__" and (user.is_superuser
                                           or capability in user.role.permissions)


@dataclass(frozen=True)
class Visit:
    url: str
    expect: bool | None  # None: either (a custom page stricter than view access)
    exact: bool  # allowed means exactly 200 (seeded objects), not just "not refused"


def _first(model_admin: Any, boss: User) -> Any:
    return model_admin.get_queryset(fake_request(boss)).order_by("pk").first()


def _params(pattern: URLPattern, obj: Any) -> dict[str, Any] | None:
    names = re.findall(r"<(?:\w+:)?(\w+)>", str(pattern.pattern))
    values: dict[str, Any] = {}
    for name in names:
        if name == "object_id":
            if obj is None:
                return None
            values[name] = obj.pk
        elif name in PARAM_MODELS:
            from django.apps import apps

            row = apps.get_model(PARAM_MODELS[name]).objects.order_by("pk").first()
            values[name] = row.pk if row else 1
        else:
            values[name] = 1
    return values


def model_visits(user: User, boss: User) -> list[Visit]:
    visits: list[Visit] = []
    for model, model_admin in admin.site._registry.items():
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        obj = _first(model_admin, boss)
        can_view = allowed(model_admin, "view", user) or allowed(model_admin, "change", user)
        visits.append(Visit(reverse(f"{info}_changelist"), can_view, True))
        visits.append(Visit(reverse(f"{info}_add"), allowed(model_admin, "add", user), True))
        if obj is not None:
            visits.append(Visit(reverse(f"{info}_change", args=[obj.pk]), can_view, True))
            visits.append(Visit(reverse(f"{info}_history", args=[obj.pk]), can_view, True))
            visits.append(Visit(reverse(f"{info}_delete", args=[obj.pk]),
                                allowed(model_admin, "delete", user), True))
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None) or ""
            if not isinstance(pattern, URLPattern) or not name or name.removeprefix(
                    f"{model._meta.app_label}_{model._meta.model_name}_") in STANDARD:
                continue
            params = _params(pattern, obj)
            if params is None:
                continue
            url = reverse(f"admin:{name}", kwargs=params)
            visits.append(Visit(url, _custom_allowed(model_admin, name, user, can_view), False))
    return visits


def _custom_allowed(model_admin: Any, url_name: str, user: User,
                    can_view: bool) -> bool | None:
    """An unfold action URL needs its declared permissions; another custom page at least the
    model's view access, and opens to a holder of every capability (what it needs in between
    is checked by its own tests)."""
    declared = [model_admin._extract_action_names(group) for group in (
        model_admin.actions_list, model_admin.actions_detail, model_admin.actions_row,
        model_admin.actions_submit_line)]
    for action_name in [name for names in declared for name in names]:
        full = f"{model_admin.model._meta.app_label}_{model_admin.model._meta.model_name}_"
        if url_name == full + action_name:
            method = getattr(model_admin, action_name)
            return can_view and all(
                getattr(model_admin, f"has_{p}_permission")(fake_request(user))
                for p in getattr(method, "allowed_permissions", ()))
    if not can_view:
        return False
    return True if user.is_superuser or set(user.role.permissions) >= CAPABILITIES else None


def site_visits(user: User | None) -> list[Visit]:
    staff = user is not None and user.is_staff
    visits = [Visit(reverse("admin:index"), staff, True),
              Visit(reverse("admin:password_change"), staff, True),
              Visit(reverse("admin:jsi18n"), staff, True),
              Visit(reverse("admin:search") + "?s=target", staff, True),
              Visit(reverse("admin:autocomplete") + "?app_label=core&model_name=user"
                    "&field_name=invited_by&term=tar", staff, True)]
    labels = {m._meta.app_label for m in admin.site._registry}
    for label in sorted(labels):
        # An app index with nothing visible answers 404: also a refusal.
        visits.append(Visit(reverse("admin:app_list", args=[label]), staff and user is not None
                            and _any_visible(label, user), False))
    return visits


def _any_visible(app_label: str, user: User) -> bool:
    return any(allowed(ma, "view", user) or allowed(ma, "change", user)
               for m, ma in admin.site._registry.items() if m._meta.app_label == app_label)


def caller_client(caller: str, roles: dict[str, Role]) -> tuple[Client, User | None]:
    if caller == "anonymous":
        return Client(), None
    if caller == "superuser":
        user = UserFactory.create(username="caller_superuser", role=roles["admin"],
                                  is_superuser=True)
        return login_staff(Client(), user), user
    user = UserFactory.create(username=f"caller_{caller}",
                              role=roles["user" if caller == "member" else caller])
    return login_staff(Client(), user, verified=caller != "member"), user


def refused(response: Any, caller: str, url: str = "") -> bool:
    if caller in ("anonymous", "member"):
        return response.status_code == 302 and response["Location"].startswith("/admin/login/")
    if response.status_code == 404 and url.count("/") == 3:  # /admin/<app>/
        return True
    return response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_every_admin_url_allows_exactly_the_declared_callers(caller, roles, world):
    client, user = caller_client(caller, roles)
    visits = site_visits(user) + model_visits(user or world["boss"], world["boss"])
    assert len(visits) > 60
    problems = []
    for visit in visits:
        staff = user is not None and user.is_staff
        expect = visit.expect if staff else False
        response = client.get(visit.url)
        no = refused(response, caller, visit.url)
        if response.status_code >= 500:
            problems.append(f"{visit.url}: {response.status_code}")
        elif expect is None:
            continue
        elif not expect and not no:
            problems.append(f"{visit.url}: expected a refusal, got {response.status_code}")
        elif expect and no:
            problems.append(f"{visit.url}: expected access, got {response.status_code}")
        elif expect and visit.exact and response.status_code != 200:
            problems.append(f"{visit.url}: expected 200, got {response.status_code}")
    assert problems == [], "\n".join(problems)


def action_cases(boss: User) -> list[tuple[str, str, Any, Any]]:
    """(changelist URL, action name, ModelAdmin, selected pk) for every changelist action."""
    cases = []
    for model, model_admin in admin.site._registry.items():
        obj = _first(model_admin, boss)
        if obj is None:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        # All declared actions, before permission filtering (a private Django API).
        every = model_admin._get_base_actions()  # type: ignore[attr-defined]
        for _func, name, _description in every:
            cases.append((url, name, model_admin, obj.pk))
    return cases


def _action_allowed(model_admin: Any, name: str, user: User) -> bool:
    request = fake_request(user)
    can_view = allowed(model_admin, "view", user) or allowed(model_admin, "change", user)
    return can_view and name in model_admin.get_actions(request)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_every_admin_action_runs_only_for_the_declared_callers(caller, roles, world):
    """POST each action without its confirmation: allowed callers get the intermediate page
    or the result; refused ones get a refusal and nothing is journaled."""
    client, user = caller_client(caller, roles)
    cases = action_cases(world["boss"])
    assert len(cases) >= 15
    problems = []
    for url, name, model_admin, pk in cases:
        expect = user is not None and user.is_staff and _action_allowed(model_admin, name, user)
        journal = LogEntry.objects.count()
        response = client.post(url, {"action": name, "_selected_action": [pk], "index": 0})
        wrote = LogEntry.objects.count() - journal
        if response.status_code >= 500:
            problems.append(f"{name}: {response.status_code}")
        elif expect and (refused(response, caller) or response.status_code not in (200, 302)):
            problems.append(f"{name}: expected to run, got {response.status_code}")
        elif not expect:
            ran = wrote or response.get("Content-Type", "").startswith("text/csv") or (
                response.status_code == 200 and b'name="apply"' in response.content)
            if ran:
                problems.append(f"{name}: ran for {caller}")
    assert problems == [], "\n".join(problems)


@pytest.mark.django_db
@pytest.mark.parametrize("enrolled", [True, False])
def test_no_admin_page_without_the_second_factor(enrolled, roles, world):
    """A password-only staff session is sent to the OTP step from every admin URL."""
    user = UserFactory.create(username="half_in", role=roles["admin"], is_superuser=True)
    if enrolled:
        totp_device(user)
    client = login_staff(Client(), user, verified=False)
    step = "/admin/otp/verify/" if enrolled else "/admin/otp/enrol/"
    visits = site_visits(user) + model_visits(user, world["boss"])
    assert len(visits) > 60
    journal = LogEntry.objects.count()
    for visit in visits:
        response = client.get(visit.url)
        assert response.status_code == 302, visit.url
        assert response["Location"].startswith(step), (visit.url, response["Location"])
    for url, name, _model_admin, pk in action_cases(world["boss"]):
        response = client.post(url, {"action": name, "apply": "1", "_selected_action": [pk]})
        assert response.status_code == 302, name
        assert response["Location"].startswith(step), name
    assert client.post(reverse("admin:logout"))["Location"].startswith(step)
    assert LogEntry.objects.count() == journal
    assert User.objects.filter(username="target").exists()


@pytest.mark.django_db
def test_a_member_with_a_staff_password_session_never_gets_in(member):
    """Non-staff: sent to the member pages, or refused by the admin's login; never the OTP
    step (no device gets created)."""
    client = Client()
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    page = client.get("/admin/login/")
    # A member never sees the staff login: their own pages are elsewhere.
    assert page.status_code == 302 and page["Location"] == "/"
    refused = client.post("/admin/login/", {"username": member.username,
                                             "password": "correct horse battery"})
    assert refused.status_code == 200
    assert b"not authorized" in refused.content or b"staff account" in refused.content
    assert client.get("/admin/core/user/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_sidebar_is_grouped_by_task_and_filtered_by_capability(staff_client, world):
    admin_page = staff_client("admin").get("/admin/").content.decode()
    for title in ("People", "Keys &amp; subscriptions", "Loader", "Journals", "System"):
        assert title in admin_page, title
    support_page = staff_client("support").get("/admin/").content.decode()
    assert "/admin/core/user/" in support_page
    assert "/admin/core/role/" in support_page  # every staff member may read the roles
    assert "/admin/django_q/schedule/" not in support_page
    assert "/admin/axes/accesslog/" not in support_page
    assert "/admin/core/licensekey/generate/" not in support_page
    assert "/admin/core/licensekey/generate/" in admin_page


@pytest.mark.django_db
def test_admin_speaks_russian(staff_client, world):
    client = staff_client("admin")
    page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Люди" in page
    assert "Журналы" in page
