"""The sidebar, grouped by task and built from the site's registry on each request.

Built from whatever is registered (other modules add models over time): known models get a
translated title and a place in their task group, anything else lands under System. An entry
shows only when its ModelAdmin lets the member view it, the same check its pages make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

PEOPLE, KEYS, LOADER, JOURNALS, SYSTEM = "people", "keys", "loader", "journals", "system"

GROUPS: list[tuple[str, Any]] = [
    (PEOPLE, _("People")),
    (KEYS, _("Keys & subscriptions")),
    (LOADER, _("Loader")),
    (JOURNALS, _("Journals")),
    (SYSTEM, _("System")),
]

# model label -> (group, title, icon); the order here is the order in the sidebar.
KNOWN: dict[str, tuple[str, Any, str]] = {
    "core.user": (PEOPLE, _("Members"), "person"),
    "core.ban": (PEOPLE, _("Bans"), "gavel"),
    "core.invite": (PEOPLE, _("Invites"), "mail"),
    "core.role": (PEOPLE, _("Roles"), "badge"),
    "core.licensekey": (KEYS, _("Keys"), "key"),
    "core.keygenerationjob": (KEYS, _("Key batches"), "stacks"),
    "core.subscription": (KEYS, _("Subscriptions"), "schedule"),
    "core.product": (KEYS, _("Products"), "inventory_2"),
    "core.licensecheckday": (KEYS, _("Licence checks"), "verified"),
    "core.loaderrelease": (LOADER, _("Loader releases"), "download"),
    "core.useractionentry": (JOURNALS, _("User actions"), "history"),
    "core.moderationentry": (JOURNALS, _("Moderation"), "shield_person"),
    "core.systemerrorentry": (JOURNALS, _("System errors"), "error"),
    "core.logentry": (JOURNALS, _("All journal entries"), "list_alt"),
    "django_q.ormq": (SYSTEM, _("Queued tasks"), "queue"),
    "django_q.schedule": (SYSTEM, _("Scheduled tasks"), "event_repeat"),
    "django_q.success": (SYSTEM, _("Successful tasks"), "task_alt"),
    "django_q.failure": (SYSTEM, _("Failed tasks"), "report"),
    "axes.accessattempt": (PEOPLE, _("Login lock-outs"), "lock"),
    "axes.accesslog": (SYSTEM, _("Login log"), "login"),
    "axes.accessfailurelog": (SYSTEM, _("Failed logins"), "no_accounts"),
    "auth.group": (SYSTEM, _("Django groups"), "group"),
}

# Extra pages that are not changelists: (group, url name, title, icon, ModelAdmin model label,
# permission method of that ModelAdmin). Skipped while the page is not registered.
PAGES: list[tuple[str, str, Any, str, str, str]] = [
    (PEOPLE, "admin:core_invite_create_invite", _("Create invite"), "person_add",
     "core.invite", "has_create_invite_permission"),
    (KEYS, "admin:core_licensekey_generate_keys_page", _("Generate keys"), "add_box",
     "core.licensekey", "has_generate_keys_permission"),
]


def _permission(model_admin: Any, method: str = "has_view_permission") -> Callable[..., bool]:
    def check(request: HttpRequest) -> bool:
        return bool(getattr(model_admin, method)(request))

    return check


def sidebar_navigation(request: HttpRequest) -> list[dict[str, Any]]:
    """unfold's SIDEBAR["navigation"] callback."""
    registry = {model._meta.label_lower: (model, model_admin)
                for model, model_admin in admin.site._registry.items()}
    items: dict[str, list[tuple[int, dict[str, Any]]]] = {key: [] for key, _title in GROUPS}
    order = list(KNOWN)
    for label, (model, model_admin) in registry.items():
        group, title, icon = KNOWN.get(
            label, (SYSTEM, capfirst(model._meta.verbose_name_plural), "table"))
        try:
            link = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        position = order.index(label) if label in order else len(order)
        items[group].append((position, {"title": title, "icon": icon, "link": link,
                                        "permission": _permission(model_admin)}))
    for group, url_name, title, icon, label, method in PAGES:
        if label not in registry or not hasattr(registry[label][1], method):
            continue
        try:
            link = reverse(url_name)
        except NoReverseMatch:
            continue
        position = order.index(label) if label in order else len(order)
        items[group].append((position, {"title": title, "icon": icon, "link": link,
                                        "permission": _permission(registry[label][1], method)}))
    navigation: list[dict[str, Any]] = [{"items": [{
        "title": _("Dashboard"), "icon": "dashboard", "link": reverse("admin:index"),
    }]}]
    for key, title in GROUPS:
        if items[key]:
            navigation.append({
                "title": title, "separator": True, "collapsible": False,
                "items": [item for _position, item in sorted(items[key], key=lambda p: p[0])],
            })
    return navigation
