from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.models import RoleSyncRequest
from core.services.rolesync import role_sync_request
from tests.conftest import run_concurrently
from tests.factories import UserFactory


@pytest.mark.django_db
class TestRoleSyncRequest:
    def test_creates_a_due_row(self, member):
        before = timezone.now()
        role_sync_request(user_id=member.pk, reason="key.redeem")
        row = RoleSyncRequest.objects.get()
        assert row.user_id == member.pk and row.reason == "key.redeem"
        assert row.attempts == 0 and row.last_error == ""
        assert before <= row.requested_at <= row.not_before <= timezone.now()

    def test_second_request_coalesces(self, member):
        role_sync_request(user_id=member.pk, reason="key.redeem")
        first = RoleSyncRequest.objects.get()
        role_sync_request(user_id=member.pk, reason="user.ban")
        row = RoleSyncRequest.objects.get()
        assert row.pk == first.pk
        assert row.reason == "user.ban" and row.requested_at > first.requested_at

    def test_new_request_clears_back_off_but_keeps_history(self, member):
        role_sync_request(user_id=member.pk, reason="login")
        later = timezone.now() + timedelta(hours=1)
        RoleSyncRequest.objects.update(attempts=3, last_error="unknown member", not_before=later)
        role_sync_request(user_id=member.pk, reason="discord.join")
        row = RoleSyncRequest.objects.get()
        assert row.not_before <= timezone.now()
        assert row.attempts == 3 and row.last_error == "unknown member"

    def test_one_row_per_user(self, member, support):
        for user in (member, support, member, support):
            role_sync_request(user_id=user.pk, reason="reconcile")
        assert sorted(RoleSyncRequest.objects.values_list("user_id", flat=True)) == sorted(
            [member.pk, support.pk]
        )

    def test_rolls_back_with_the_change_that_caused_it(self, member):
        def ban_that_fails() -> None:
            with transaction.atomic():
                role_sync_request(user_id=member.pk, reason="user.ban")
                raise RuntimeError("the ban failed")

        with pytest.raises(RuntimeError):
            ban_that_fails()
        assert not RoleSyncRequest.objects.exists()

    def test_long_reason_is_cut(self, member):
        role_sync_request(user_id=member.pk, reason="x" * 500)
        assert RoleSyncRequest.objects.get().reason == "x" * 64

    def test_deleted_with_the_user(self, member):
        role_sync_request(user_id=member.pk, reason="login")
        member.delete()
        assert not RoleSyncRequest.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_one_user_leave_one_row(roles):
    for repeat in range(10):
        user = UserFactory.create(role=roles["user"])
        results = run_concurrently(
            lambda i, user=user: role_sync_request(user_id=user.pk, reason=f"race{i}")
        )
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors
        assert RoleSyncRequest.objects.filter(user=user).count() == 1
        assert RoleSyncRequest.objects.get(user=user).reason.startswith("race")
        assert RoleSyncRequest.objects.count() == repeat + 1
