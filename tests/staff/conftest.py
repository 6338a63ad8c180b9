"""Shared staff-admin fixtures: a logged-in staff client that has passed the second factor.

admin-B's tests import from here too: `staff_client(role_key)` and `otp_verify(client, user)`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import Role, User
from tests.factories import UserFactory

# The login in tests bypasses axes' request-bound backend, like the API tests do.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def totp_device(user: User) -> TOTPDevice:
    """The user's confirmed TOTP device, created on first use."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="default", confirmed=True)
    return device


def totp_token(device: TOTPDevice) -> str:
    """The token the authenticator app would show right now."""
    from django_otp.oath import totp

    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits,
                 drift=device.drift)
    return f"{value:0{device.digits}d}"


def otp_verify(client: Client, user: User) -> TOTPDevice:
    """Mark the client's session as having passed the second factor with the user's device.

    Writes the same session key django_otp.login() writes after a good token; the real
    token flow is exercised in test_twofactor.py.
    """
    device = totp_device(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def login_staff(client: Client, user: User, *, verified: bool = True) -> Client:
    client.force_login(user, backend=MODEL_BACKEND)
    if verified:
        otp_verify(client, user)
    return client


@pytest.fixture
def staff_user(roles: dict[str, Role]) -> Callable[..., User]:
    """Make a user of the given role key (staff flag follows the role)."""

    def make(role_key: str, username: str | None = None) -> User:
        return UserFactory.create(username=username or f"{role_key}_staff", role=roles[role_key])

    return make


@pytest.fixture
def staff_client(staff_user: Callable[..., User]) -> Callable[..., Client]:
    """staff_client("admin") -> a Client logged in as a new Admin who has passed TOTP.

    The user is on `client.user` for tests that need it. Works for "user" too (a member,
    for deny checks); pass verified=False for a password-only session.
    """

    def make(role_key: str, *, verified: bool = True, username: str | None = None) -> Client:
        user = staff_user(role_key, username)
        client = login_staff(Client(), user, verified=verified)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make
