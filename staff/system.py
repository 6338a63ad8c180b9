"""System pages: django-q2's queue and task admins, django-axes' lock-outs and Django's groups,
re-registered on unfold with capabilities; django-otp's raw device admins removed.

Staff hold no Django model permissions (capabilities live on roles), so third-party admins
left as registered would be reachable by superusers only, and unstyled.
"""

from __future__ import annotations

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from staff.base import StaffModelAdmin

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
    # Read-only: a lock-out ends by itself after AXES_COOLOFF_MINUTES. axes' own cleanup
    # action needs a login request (it crashes here) and would not be journaled.
    view_capability = "manage_users"
    actions: list[str] = []


@admin.register(AccessLog)
class AccessLogAdmin(axes_admin.AccessLogAdmin, StaffModelAdmin):
    view_capability = "manage_users"


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(axes_admin.AccessFailureLogAdmin, StaffModelAdmin):
    view_capability = "manage_users"
