"""The role editor: Admin only, never a role at or above the editor's rank, every change
journaled with before/after, members' staff flag and Discord roles following."""

from __future__ import annotations

import pytest

from core.errors import PermissionDenied, RankViolation
from core.models import LogEntry, Role, RoleSyncRequest
from core.services.roles import role_update
from tests.factories import UserFactory

ROLES = "/admin/core/role/"


def form(role: Role, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": role.name, "rank": role.rank, "discord_role_id": role.discord_role_id or "",
        "invite_quota": "" if role.invite_quota is None else role.invite_quota,
        "permissions": list(role.permissions),
    }
    if role.invite_quota is None:
        data["unlimited_invites"] = "on"
    if role.staff:
        data["staff"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.django_db
def test_admin_edits_a_role_and_the_change_is_journaled(staff_client, roles):
    admin = staff_client("admin")
    support = roles["support"]
    linked = UserFactory.create(username="linked", role=support, discord_id=99)
    UserFactory.create(username="unlinked", role=support)
    page = admin.get(f"{ROLES}{support.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="permissions"' in html and 'value="manage_keys"' in html
    assert 'name="unlimited_invites"' in html

    response = admin.post(f"{ROLES}{support.pk}/change/", form(
        support, invite_quota=5, discord_role_id=555,
        permissions=["view_any_stats", "ban_users", "generate_keys"]))
    assert response.status_code == 302, response.content[:3000]
    support.refresh_from_db()
    assert support.invite_quota == 5 and support.discord_role_id == 555
    assert support.permissions == ["ban_users", "generate_keys", "view_any_stats"]
    entry = LogEntry.objects.get(action="role.update")
    assert entry.category == "moderation" and entry.actor == admin.user
    assert entry.data["before"] == {"invite_quota": 2, "discord_role_id": None,
                                    "permissions": ["ban_users", "view_any_stats"]}
    assert entry.data["after"]["invite_quota"] == 5
    assert entry.data["syncs_queued"] == 1
    assert list(RoleSyncRequest.objects.values_list("user__username", flat=True)) == ["linked"]
    assert linked.role_id == support.pk


@pytest.mark.django_db
def test_unlimited_quota_and_staff_flag(staff_client, roles):
    admin = staff_client("admin")
    user_role = roles["user"]
    member = UserFactory.create(username="plain", role=user_role)
    response = admin.post(f"{ROLES}{user_role.pk}/change/",
                          form(user_role, unlimited_invites="on", invite_quota="", staff="on"))
    assert response.status_code == 302, response.content[:3000]
    user_role.refresh_from_db()
    assert user_role.invite_quota is None and user_role.staff
    member.refresh_from_db()
    assert member.is_staff
    missing = admin.post(f"{ROLES}{user_role.pk}/change/",
                         form(user_role, unlimited_invites=None, invite_quota=""))
    assert missing.status_code == 200 and b"Set a monthly quota" in missing.content


@pytest.mark.django_db
def test_nobody_edits_a_role_at_or_above_their_rank(staff_client, roles):
    admin = staff_client("admin")
    own = roles["admin"]
    page = admin.get(f"{ROLES}{own.pk}/change/")
    assert page.status_code == 200 and b'name="rank"' not in page.content
    assert admin.post(f"{ROLES}{own.pk}/change/", form(own, invite_quota=1)).status_code == 403
    moderator_role = roles["moderator"]
    raised = admin.post(f"{ROLES}{moderator_role.pk}/change/", form(moderator_role, rank=50))
    assert raised.status_code == 200 and b"below your own" in raised.content
    moderator_role.refresh_from_db()
    assert moderator_role.rank == 30
    assert not LogEntry.objects.filter(action="role.update").exists()


@pytest.mark.django_db
def test_only_manage_roles_may_edit(staff_client, roles):
    moderator = staff_client("moderator")
    user_role = roles["user"]
    assert moderator.get(f"{ROLES}{user_role.pk}/change/").status_code == 200  # read-only
    assert moderator.post(f"{ROLES}{user_role.pk}/change/",
                          form(user_role, invite_quota=50)).status_code == 403
    assert moderator.get(f"{ROLES}add/").status_code == 403
    user_role.refresh_from_db()
    assert user_role.invite_quota == 2


@pytest.mark.django_db
def test_a_new_role_can_be_added(staff_client):
    admin = staff_client("admin")
    response = admin.post(f"{ROLES}add/", {"key": "vip", "name": "VIP", "rank": 15,
                                           "invite_quota": 4, "permissions": []})
    assert response.status_code == 302, response.content[:3000]
    vip = Role.objects.get(key="vip")
    assert (vip.rank, vip.invite_quota, vip.staff) == (15, 4, False)
    assert LogEntry.objects.get(action="role.create").data["role"] == "vip"
    clash = admin.post(f"{ROLES}add/", {"key": "vip2", "name": "VIP 2", "rank": 15,
                                        "invite_quota": 1})
    assert clash.status_code == 200 and b"Another role has this rank" in clash.content


@pytest.mark.django_db
def test_role_update_refuses_permissions_the_editor_lacks(roles):
    editor_role = Role.objects.create(key="editor", name="Editor", rank=35, staff=True,
                                      permissions=["manage_roles"])
    editor = UserFactory.create(username="editor", role=editor_role)
    with pytest.raises(PermissionDenied):
        role_update(actor=editor, role=roles["support"], changes={"permissions": ["manage_keys"]})
    with pytest.raises(RankViolation):
        role_update(actor=editor, role=roles["admin"], changes={"invite_quota": 1})
    # Keeping permissions the editor lacks is fine; only adding them is refused.
    kept = role_update(actor=editor, role=roles["support"],
                       changes={"invite_quota": 3, "permissions": ["ban_users", "view_any_stats"]})
    assert kept.invite_quota == 3
    updated = role_update(actor=editor, role=roles["support"], changes={"permissions": []})
    assert updated.permissions == []
