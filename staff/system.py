"""System pages: django-q2's queue and task admins, django-axes' lock-outs and Django's groups,
re-registered on unfold with capabilities; django-otp's raw device admins removed.

Staff hold no Django model permissions (capabilities live on roles), so third-party admins
left as registered would be reachable by superusers only, and unstyled.
"""

from __future__ import annotations

from typing import Any

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from core.services.lockouts import lockout_lift
from staff.actions import actor_of, capped, run_each
from staff.base import StaffModelAdmin, staff_can

# The system pages belong to the Admin role; manage_roles is the capability only it holds.
SYSTEM = "manage_roles"

for model in (Schedule, Success, Failure, OrmQ, AccessAttempt, AccessLog, AccessFailureLog,
              TOTPDevice, StaticDevice, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, StaffModelAdmin):
    # Django groups carry model permissions, which this site does not use (capabilities live
    # on roles); kept for completeness, Admin only.
    view_capability = SYSTEM
    add_capability = SYSTEM
    change_capability = SYSTEM
    delete_capability = SYSTEM


@admin.register(Schedule)
class ScheduleAdmin(q_admin.ScheduleAdmin, StaffModelAdmin):
    view_capability = SYSTEM
    add_capability = SYSTEM
    change_capability = SYSTEM
    delete_capability = SYSTEM


@admin.register(Success)
class SuccessAdmin(q_admin.TaskAdmin, StaffModelAdmin):
    view_capability = SYSTEM
    delete_capability = SYSTEM


@admin.register(Failure)
class FailureAdmin(q_admin.FailAdmin, StaffModelAdmin):
    view_capability = SYSTEM
    delete_capability = SYSTEM


@admin.register(OrmQ)
class QueueAdmin(q_admin.QueueAdmin, StaffModelAdmin):
    view_capability = SYSTEM
    delete_capability = SYSTEM


@admin.register(AccessAttempt)
class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin, StaffModelAdmin):
    # A lock-out ends by itself after AXES_COOLOFF_MINUTES, or is lifted here through
    # lockout_lift (journaled). axes' own cleanup action needs a login request (it crashes
    # here) and would not be journaled.
    view_capability = "manage_users"
    actions = ["lift_lockouts"]

    def has_lift_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return staff_can(request, "manage_users")

    @admin.action(description=_("Lift the selected lock-outs"), permissions=["lift"])
    def lift_lockouts(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        attempts = capped(request, queryset.order_by("pk"))
        if attempts is not None:
            actor = actor_of(request)
            run_each(request, attempts,
                     lambda attempt: lockout_lift(actor=actor, attempt_ids=[attempt.pk]),
                     done=_("Lifted %(count)d lock-outs."))


@admin.register(AccessLog)
class AccessLogAdmin(axes_admin.AccessLogAdmin, StaffModelAdmin):
    view_capability = "manage_users"


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(axes_admin.AccessFailureLogAdmin, StaffModelAdmin):
    view_capability = "manage_users"
