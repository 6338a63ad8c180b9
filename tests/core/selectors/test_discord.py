from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import Ban, Product, Role, Subscription, User
from core.selectors.discord import (
    SNOWFLAKE_MAX,
    managed_role_ids,
    member_roles,
    member_wanted_roles,
    user_by_discord_id,
)
from core.services.bans import ban_create, ban_lift
from tests.factories import ProductFactory

USER_ROLE = 111_000_000_000_000_001
SUPPORT_ROLE = 111_000_000_000_000_002
LOADER_ROLE = 222_000_000_000_000_001
EXTRA_ROLE = 222_000_000_000_000_002
MEMBER_DISCORD = 333_000_000_000_000_001


def _subscribe(user: User, product: Product, *, days: float) -> Subscription:
    now = timezone.now()
    return Subscription.objects.create(user=user, product=product,
                                       started_at=now - timedelta(days=30),
                                       expires_at=now + timedelta(days=days))


@pytest.fixture
def discord_roles(roles):
    Role.objects.filter(key="user").update(discord_role_id=USER_ROLE)
    Role.objects.filter(key="support").update(discord_role_id=SUPPORT_ROLE)


@pytest.fixture
def loader(db):
    return ProductFactory.create(slug="loader", discord_role_id=LOADER_ROLE)


@pytest.fixture
def extra(db):
    return ProductFactory.create(slug="extra", discord_role_id=EXTRA_ROLE)


def _fresh(user: User) -> User:
    return User.objects.select_related("role").get(pk=user.pk)


@pytest.mark.django_db
class TestWantedRoles:
    def test_role_and_active_product_roles(self, discord_roles, member, loader, extra):
        _subscribe(member, loader, days=3)
        _subscribe(member, extra, days=1)
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE, LOADER_ROLE, EXTRA_ROLE}

    def test_deactivated_product_gives_no_role(self, discord_roles, member, loader, extra):
        _subscribe(member, loader, days=3)
        _subscribe(member, extra, days=3)
        Product.objects.filter(pk=extra.pk).update(is_active=False)
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE, LOADER_ROLE}
        # Still managed: the drain takes it off members who have it.
        assert EXTRA_ROLE in managed_role_ids()

    def test_expired_subscription_excluded(self, discord_roles, member, loader, extra):
        _subscribe(member, loader, days=3)
        _subscribe(member, extra, days=-1)
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE, LOADER_ROLE}

    def test_expiry_is_judged_at_now(self, discord_roles, member, loader):
        sub = _subscribe(member, loader, days=1)
        later = sub.expires_at + timedelta(seconds=1)
        assert member_wanted_roles(user=_fresh(member), now=later) == {USER_ROLE}

    def test_product_without_discord_role(self, discord_roles, member):
        _subscribe(member, ProductFactory.create(), days=3)
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE}

    def test_role_without_discord_role(self, roles, member, loader):
        _subscribe(member, loader, days=3)
        assert member_wanted_roles(user=_fresh(member)) == {LOADER_ROLE}

    def test_no_role_no_subscriptions(self, db):
        user = User.objects.create(username="bare", role=None)
        assert member_wanted_roles(user=user) == set()

    def test_banned_wants_nothing(self, discord_roles, member, support, loader):
        _subscribe(member, loader, days=3)
        ban_create(actor=support, user=member, reason="spam")
        assert member_wanted_roles(user=_fresh(member)) == set()

    def test_open_ban_wins_over_a_stale_active_flag(self, discord_roles, member, loader):
        _subscribe(member, loader, days=3)
        Ban.objects.create(user=member, reason="spam")
        assert member.is_active
        assert member_wanted_roles(user=_fresh(member)) == set()

    def test_lapsed_or_lifted_ban_gives_roles_back(self, discord_roles, member, support, loader):
        _subscribe(member, loader, days=3)
        now = timezone.now()
        Ban.objects.create(user=member, reason="old", created_at=now - timedelta(hours=2),
                           ends_at=now - timedelta(hours=1))
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE, LOADER_ROLE}
        Ban.objects.all().delete()
        ban_create(actor=support, user=member, reason="spam")
        ban_lift(actor=support, user=member)
        assert member_wanted_roles(user=_fresh(member)) == {USER_ROLE, LOADER_ROLE}

    def test_pure_repeatable(self, discord_roles, member, loader):
        _subscribe(member, loader, days=3)
        user = _fresh(member)
        assert member_wanted_roles(user=user) == member_wanted_roles(user=user)

    def test_query_count_does_not_grow(self, discord_roles, member,
                                       django_assert_max_num_queries):
        for i in range(30):
            _subscribe(member, ProductFactory.create(discord_role_id=500 + i), days=1)
        user = _fresh(member)
        with django_assert_max_num_queries(2):
            wanted = member_wanted_roles(user=user)
        assert len(wanted) == 31


@pytest.mark.django_db
class TestManagedRoles:
    def test_roles_and_products_including_inactive(self, discord_roles, loader):
        ProductFactory.create(discord_role_id=EXTRA_ROLE, is_active=False)
        ProductFactory.create()
        assert managed_role_ids() == {USER_ROLE, SUPPORT_ROLE, LOADER_ROLE, EXTRA_ROLE}

    def test_shared_id_listed_once(self, discord_roles):
        ProductFactory.create(discord_role_id=USER_ROLE)
        assert managed_role_ids() == {USER_ROLE, SUPPORT_ROLE}

    def test_one_query(self, discord_roles, django_assert_num_queries):
        for i in range(20):
            ProductFactory.create(discord_role_id=900 + i)
        with django_assert_num_queries(1):
            assert len(managed_role_ids()) == 22


@pytest.mark.django_db
class TestUserByDiscordId:
    def test_found_and_missing(self, member):
        User.objects.filter(pk=member.pk).update(discord_id=MEMBER_DISCORD)
        assert user_by_discord_id(discord_id=MEMBER_DISCORD) == member
        assert user_by_discord_id(discord_id=MEMBER_DISCORD + 1) is None

    @pytest.mark.parametrize("discord_id", [0, -1, SNOWFLAKE_MAX + 1, 10**30])
    def test_impossible_ids_never_reach_the_database(self, discord_id,
                                                     django_assert_num_queries):
        with django_assert_num_queries(0):
            assert user_by_discord_id(discord_id=discord_id) is None

    def test_member_roles_unlinked(self, discord_roles):
        result = member_roles(discord_id=MEMBER_DISCORD)
        assert not result.linked and result.wanted == frozenset()
        assert result.managed == {USER_ROLE, SUPPORT_ROLE}

    def test_member_roles_linked(self, discord_roles, member, loader):
        User.objects.filter(pk=member.pk).update(discord_id=MEMBER_DISCORD)
        _subscribe(member, loader, days=1)
        result = member_roles(discord_id=MEMBER_DISCORD)
        assert result.linked and result.wanted == {USER_ROLE, LOADER_ROLE}
        assert result.wanted <= result.managed
