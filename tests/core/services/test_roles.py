from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.models import Role
from core.services.roles import roles_sync_from_config


@pytest.mark.django_db
class TestRoleSync:
    def test_creates_from_config_and_is_idempotent(self):
        report = roles_sync_from_config()
        assert report.created == ["user", "support", "moderator", "admin"]
        again = roles_sync_from_config()
        assert again.created == [] and again.updated == []
        admin = Role.objects.get(key="admin")
        assert admin.invite_quota is None and admin.staff and admin.has_capability("delete_users")
        assert Role.objects.get(key="moderator").invite_quota == 10

    def test_admin_edits_win_unless_overwrite(self):
        roles_sync_from_config()
        Role.objects.filter(key="user").update(invite_quota=5, name="Member")
        roles_sync_from_config()
        assert Role.objects.get(key="user").invite_quota == 5
        report = roles_sync_from_config(overwrite=True)
        assert report.updated == ["user"]
        assert Role.objects.get(key="user").invite_quota == 2

    def test_overwrite_survives_swapped_ranks(self):
        roles_sync_from_config()
        Role.objects.filter(key="user").update(rank=99)
        Role.objects.filter(key="admin").update(rank=10)
        roles_sync_from_config(overwrite=True)
        ranks = dict(Role.objects.values_list("key", "rank"))
        assert ranks == {"user": 10, "support": 20, "moderator": 30, "admin": 40}

    def test_missing_role_whose_rank_an_admin_reused_is_skipped(self):
        roles_sync_from_config()
        Role.objects.filter(key="support").delete()
        Role.objects.filter(key="user").update(rank=20)
        report = roles_sync_from_config()
        assert "support" in report.skipped
        assert not Role.objects.filter(key="support").exists()

    def test_overwrite_refuses_rank_held_by_a_database_only_role(self):
        roles_sync_from_config()
        Role.objects.filter(key="user").update(rank=5)
        Role.objects.create(key="vip", name="VIP", rank=10, invite_quota=3)
        with pytest.raises(InvalidInput, match="vip"):
            roles_sync_from_config(overwrite=True)
        assert Role.objects.get(key="user").rank == 5  # nothing half-applied
