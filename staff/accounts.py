from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from core.models import Ban, Invite, Role, User

admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ["username", "role", "discord_username", "is_active", "date_joined"]
    list_filter = ["role", "is_active", "is_staff"]
    list_select_related = ["role"]
    search_fields = ["username", "email", "discord_username"]
    raw_id_fields = ["invited_by"]
    readonly_fields = ["registration_ip", "discord_id", "discord_linked_at", "session_epoch"]
    fieldsets = (
        *BaseUserAdmin.fieldsets,  # type: ignore[misc]
        ("ZalypaSPB", {"fields": ("role", "invited_by", "can_invite", "discord_id",
                                  "discord_username", "discord_linked_at", "registration_ip",
                                  "session_epoch")}),
    )


@admin.register(Role)
class RoleAdmin(ModelAdmin):
    list_display = ["name", "key", "rank", "invite_quota", "staff", "discord_role_id"]


@admin.register(Invite)
class InviteAdmin(ModelAdmin):
    list_display = ["id", "created_by", "status", "created_at", "expires_at", "used_by"]
    list_filter = ["status"]
    list_select_related = ["created_by", "used_by"]
    raw_id_fields = ["created_by", "used_by"]
    exclude = ["code_digest"]


@admin.register(Ban)
class BanAdmin(ModelAdmin):
    list_display = ["user", "reason", "author", "created_at", "ends_at", "lifted_at"]
    list_select_related = ["user", "author"]
    raw_id_fields = ["user", "author", "lifted_by"]
