from __future__ import annotations

from unittest import mock

import pytest

from core.services.users import user_delete
from tests.factories import UserFactory


@pytest.mark.django_db
def test_deleting_a_linked_account_strips_its_discord_roles(admin, roles):
    linked = UserFactory.create(role=roles["user"], discord_id=424242)
    with mock.patch("core.services.users.member_strip_soon") as strip:
        user_delete(actor=admin, user=linked)
    strip.assert_called_once_with(discord_id=424242)
