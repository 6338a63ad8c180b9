from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.crypto import digest
from core.errors import Conflict, InvalidInput, PermissionDenied, RankViolation, RegistrationLimited
from core.models import LogEntry, User
from core.services.invites import invite_create
from core.services.users import admin_bootstrap, user_end_sessions, user_register, user_set_role
from tests.factories import UserFactory

PASSWORD = "a fine passphrase"


@pytest.mark.django_db
class TestRegister:
    def test_ip_is_digest_plus_ciphertext(self, admin):
        invite = invite_create(creator=admin)
        user = user_register(invite_code=invite.code, username="alice", password=PASSWORD,
                             ip="192.0.2.10")
        stored = User.objects.get(pk=user.pk)
        assert stored.registration_ip == "192.0.2.10"
        assert stored.registration_ip_digest == digest("192.0.2.10", purpose="ip")
        entry = LogEntry.objects.get(action="user.register")
        assert entry.actor == user and entry.target == admin and entry.ip == "192.0.2.10"

    def test_one_account_per_ip_within_window(self, admin, settings):
        first, second = invite_create(creator=admin), invite_create(creator=admin)
        user_register(invite_code=first.code, username="one", password=PASSWORD, ip="192.0.2.1")
        with pytest.raises(RegistrationLimited):
            user_register(invite_code=second.code, username="two", password=PASSWORD,
                          ip="192.0.2.1")
        # the failed attempt did not burn the invite
        user_register(invite_code=second.code, username="two", password=PASSWORD,
                      ip="192.0.2.2")

    def test_ip_window_passes(self, admin):
        first, second = invite_create(creator=admin), invite_create(creator=admin)
        user = user_register(invite_code=first.code, username="one", password=PASSWORD,
                             ip="192.0.2.1")
        User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(hours=25))
        assert user_register(invite_code=second.code, username="two", password=PASSWORD,
                             ip="192.0.2.1")

    def test_window_zero_disables_check(self, admin, settings):
        settings.ZSPB = type(settings.ZSPB)(**{**settings.ZSPB.__dict__,
                                               "registration_ip_window_hours": 0})
        for name in ("one", "two"):
            user_register(invite_code=invite_create(creator=admin).code, username=name,
                          password=PASSWORD, ip="192.0.2.1")
        assert User.objects.filter(username__in=["one", "two"]).count() == 2

    @pytest.mark.parametrize(
        ("username", "password"),
        [("ab", PASSWORD), ("bad name!", PASSWORD), ("x" * 33, PASSWORD),
         ("carol", "123"), ("carol", "password123"), ("carolinamaria", "carolinamaria1")],
    )
    def test_bad_input_keeps_invite(self, admin, username, password):
        invite = invite_create(creator=admin)
        with pytest.raises(InvalidInput):
            user_register(invite_code=invite.code, username=username, password=password,
                          ip="192.0.2.3")
        invite.refresh_from_db()
        assert invite.status == "active"

    def test_username_taken_case_insensitive(self, admin):
        UserFactory.create(username="Dave")
        invite = invite_create(creator=admin)
        with pytest.raises(Conflict):
            user_register(invite_code=invite.code, username="dave", password=PASSWORD,
                          ip="192.0.2.4")


@pytest.mark.django_db
class TestRanks:
    def test_moderator_promotes_below_own_rank(self, moderator, member, roles):
        user_set_role(actor=moderator, user=member, role=roles["support"])
        member.refresh_from_db()
        assert member.role.key == "support" and member.is_staff
        entry = LogEntry.objects.get(action="user.set_role")
        assert entry.data == {"from": "user", "to": "support"}

    def test_cannot_grant_own_rank_or_higher(self, moderator, member, roles):
        for role in ("moderator", "admin"):
            with pytest.raises(RankViolation):
                user_set_role(actor=moderator, user=member, role=roles[role])

    def test_cannot_act_on_equal_or_higher_rank(self, moderator, admin, roles):
        peer = UserFactory.create(role=roles["moderator"])
        for target in (peer, admin):
            with pytest.raises(RankViolation):
                user_set_role(actor=moderator, user=target, role=roles["user"])

    def test_cannot_change_own_role(self, admin, roles):
        with pytest.raises(RankViolation):
            user_set_role(actor=admin, user=admin, role=roles["user"])

    def test_support_cannot_manage_users(self, support, member, roles):
        with pytest.raises(PermissionDenied):
            user_set_role(actor=support, user=member, role=roles["user"])

    def test_admin_demotes_moderator(self, admin, moderator, roles):
        user_set_role(actor=admin, user=moderator, role=roles["user"])
        moderator.refresh_from_db()
        assert moderator.role.key == "user" and not moderator.is_staff

    def test_end_sessions_needs_rank(self, moderator, admin, member):
        with pytest.raises(RankViolation):
            user_end_sessions(actor=moderator, user=admin)
        user_end_sessions(actor=moderator, user=member)
        member.refresh_from_db()
        assert member.session_epoch == 1


@pytest.mark.django_db
def test_bootstrap_admin_once(roles):
    user, password = admin_bootstrap(username="root", password=None)
    assert password and user.check_password(password) and user.role.key == "admin"
    again, second = admin_bootstrap(username="other", password="x")
    assert again == user and second is None
