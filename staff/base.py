"""Role-aware admin base: every ModelAdmin states which capability each kind of access needs.

Staff roles map to capabilities (config.yaml / the role editor); the admin enforces them in
has_*_permission, so a hidden menu entry is never the only protection. Superusers hold every
capability but NOBODY: the raw Django add, change and delete pages of domain rows would bypass
the services (their journal, rank rules and side effects), so they stay closed to everyone.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from unfold.admin import ModelAdmin

from core.models import User

# The capability of an access that goes through no service: denied to everyone.
NOBODY = "__nobody__"


def staff_can(request: HttpRequest, capability: str | None) -> bool:
    """Whether the logged-in staff member holds `capability` (None: any active staff)."""
    user = request.user
    if not (isinstance(user, User) and user.is_active and user.is_staff):
        return False
    if capability == NOBODY:
        return False
    if capability is None:
        return True
    return user.has_capability(capability)


class StaffModelAdmin(ModelAdmin):
    """Set the capability per access; None on view means any staff member may look."""

    view_capability: str | None = None
    add_capability: str | None = NOBODY
    change_capability: str | None = NOBODY
    delete_capability: str | None = NOBODY

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> Any:
        # Forms that save through a service need to know who acts (their clean() calls it).
        form = super().get_form(request, obj, change, **kwargs)
        form.actor = request.user
        return form

    def has_module_permission(self, request: HttpRequest) -> bool:
        return staff_can(request, self.view_capability)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, self.view_capability)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return staff_can(request, self.add_capability)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, self.change_capability)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, self.delete_capability)
