"""Real-time push to members' pages: the /ws/member/ consumer, the service hooks, the expiry
job, and HTTP + WebSocket served together by uvicorn.

pytest-asyncio is not a dependency: each scenario is a coroutine run with async_to_sync, and
services are called from it with sync_to_async (back on the test's thread and database
connection). The databases are transactional, so on_commit pushes really leave.

channels.testing cannot be imported without daphne (its package imports the live-server test
case), so `Communicator` below is the few lines of its WebsocketCommunicator used here.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone

from core import tasks
from core.errors import PermissionDenied
from core.models import Subscription, User
from core.schedules import SCHEDULES
from core.services import realtime
from core.services.bans import ban_create
from core.services.discord_link import discord_unlink, link_code_consume, link_code_create
from core.services.keys import key_redeem, keys_generate
from core.services.realtime import member_notify, subscriptions_notify_expired
from core.services.subscriptions import subscription_adjust
from core.services.users import user_end_sessions, user_register, user_set_password, user_set_role
from tests.factories import InviteFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 5  # seconds an expected message may take (Redis layer)
QUIET = 0.3  # how long "nothing arrives" is watched


def _session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _headers(user: User | None, origin: str = "http://testserver") -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", origin.encode())]
    if user is not None:
        headers.append((b"cookie", _session_cookie(user).encode()))
    return headers


class Communicator(ApplicationCommunicator):
    """A WebSocket client of config.asgi.application at /ws/member/, without a server."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        from config.asgi import application

        super().__init__(application, {"type": "websocket", "path": "/ws/member/",
                                        "query_string": b"", "headers": headers,
                                        "subprotocols": []})

    # As channels' communicator: the consumer's database calls run on the test's thread and
    # must not close the test's connection.
    async def send_input(self, message: dict[str, Any]) -> None:
        with mock.patch("channels.db.close_old_connections", return_value=None):
            await super().send_input(message)

    async def receive_output(self, timeout: float = 1) -> Any:
        with mock.patch("channels.db.close_old_connections", return_value=None):
            return await super().receive_output(timeout)

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept"
        return True, response.get("subprotocol")

    async def send_to(self, *, text_data: str | None = None, bytes_data: bytes | None = None
                      ) -> None:
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(text_data=json.dumps(data))

    async def receive_json_from(self, timeout: float = 1) -> Any:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def _communicator(headers: list[tuple[bytes, bytes]]) -> Communicator:
    return Communicator(headers)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def _connected(user: User) -> Communicator:
    communicator = _communicator(await sync_to_async(_headers)(user))
    connected, _ = await communicator.connect(timeout=WAIT)
    assert connected
    return communicator


def _expect(user: User, action: Callable[[], Any], *expected: tuple[str, dict[str, Any]]
            ) -> None:
    """Connect as `user`, run `action`, and see exactly `expected` arrive, in order."""
    async def scenario() -> None:
        communicator = await _connected(user)
        await sync_to_async(action)()
        for event, data in expected:
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": event, "data": data}
        assert await communicator.receive_nothing(timeout=QUIET)
        await communicator.disconnect()

    run(scenario)


def _iso(value: Any) -> str:
    return str(value.isoformat())


class TestConnection:
    def test_anonymous_is_accepted_then_closed_4401(self, roles):
        async def scenario() -> None:
            communicator = _communicator(_headers(None))
            connected, _ = await communicator.connect(timeout=WAIT)
            assert connected  # accepted, so that a browser sees the close code
            assert await communicator.receive_output(timeout=WAIT) == {
                "type": "websocket.close", "code": 4401}

        run(scenario)

    def test_inactive_user_is_closed_4401(self, member):
        headers = _headers(member)
        User.objects.filter(pk=member.pk).update(is_active=False)

        async def scenario() -> None:
            communicator = _communicator(headers)
            assert (await communicator.connect(timeout=WAIT))[0]
            assert await communicator.receive_output(timeout=WAIT) == {
                "type": "websocket.close", "code": 4401}

        run(scenario)

    def test_ended_session_is_closed_4401(self, member):
        headers = _headers(member)
        user_end_sessions(actor=member, user=member)

        async def scenario() -> None:
            communicator = _communicator(headers)
            assert (await communicator.connect(timeout=WAIT))[0]
            assert await communicator.receive_output(timeout=WAIT) == {
                "type": "websocket.close", "code": 4401}

        run(scenario)

    @pytest.mark.parametrize("origin", ["http://evil.example", None])
    def test_foreign_or_missing_origin_is_refused(self, member, origin):
        headers = [(b"cookie", _session_cookie(member).encode())]
        if origin:
            headers.append((b"origin", origin.encode()))

        async def scenario() -> None:
            connected, _ = await _communicator(headers).connect(timeout=WAIT)
            assert not connected

        run(scenario)

    def test_ping_pong_and_everything_else_ignored(self, member):
        async def scenario() -> None:
            communicator = await _connected(member)
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "pong", "data": {}}
            await communicator.send_to(text_data="not json")
            await communicator.send_to(text_data=json.dumps({"type": "subscribe", "group": "x"}))
            await communicator.send_to(text_data=json.dumps(["ping"]))
            await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 2000}))
            await communicator.send_to(bytes_data=b"\x00\x01")
            assert await communicator.receive_nothing(timeout=QUIET)
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "pong", "data": {}}
            await communicator.disconnect()

        run(scenario)


class TestDelivery:
    def test_each_member_hears_only_their_own_events(self, roles):
        alice, bob = UserFactory.create(), UserFactory.create()

        def notify(user: User, n: int) -> None:
            with transaction.atomic():
                member_notify(user_id=user.pk, event="role_changed", data={"role": f"r{n}"})

        async def scenario() -> None:
            to_alice, to_bob = await _connected(alice), await _connected(bob)
            await sync_to_async(notify)(alice, 1)
            assert await to_alice.receive_json_from(timeout=WAIT) == {
                "event": "role_changed", "data": {"role": "r1"}}
            assert await to_bob.receive_nothing(timeout=QUIET)
            await sync_to_async(notify)(bob, 2)
            assert await to_bob.receive_json_from(timeout=WAIT) == {
                "event": "role_changed", "data": {"role": "r2"}}
            assert await to_alice.receive_nothing(timeout=QUIET)
            await to_alice.disconnect()
            await to_bob.disconnect()

        run(scenario)

    def test_every_open_page_of_a_member_hears(self, member):
        def notify() -> None:
            member_notify(user_id=member.pk, event="discord_unlinked")

        async def scenario() -> None:
            pages = [await _connected(member), await _connected(member)]
            await sync_to_async(notify)()
            for page in pages:
                assert await page.receive_json_from(timeout=WAIT) == {
                    "event": "discord_unlinked", "data": {}}
                await page.disconnect()

        run(scenario)

    def test_nothing_is_sent_when_the_transaction_rolls_back(self, member):
        class Boom(Exception):
            pass

        def change_then_fail() -> None:
            with transaction.atomic():
                member_notify(user_id=member.pk, event="role_changed", data={"role": "x"})
                raise Boom

        def rolled_back() -> None:
            with pytest.raises(Boom):
                change_then_fail()

        def committed() -> None:
            with transaction.atomic():
                member_notify(user_id=member.pk, event="role_changed", data={"role": "y"})

        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(rolled_back)()
            assert await communicator.receive_nothing(timeout=QUIET)
            await sync_to_async(committed)()
            # The first thing to arrive is the committed event: the other never left.
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "role_changed", "data": {"role": "y"}}
            await communicator.disconnect()

        run(scenario)

    def test_ban_pushes_the_reason_then_closes_4403(self, member, moderator):
        ends_at = timezone.now() + timedelta(days=3)

        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(ban_create)(actor=moderator, user=member, reason="spam",
                                            ends_at=ends_at)
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "banned", "data": {"reason": "spam", "ends_at": _iso(ends_at)}}
            assert await communicator.receive_output(timeout=WAIT) == {
                "type": "websocket.close", "code": 4403}

        run(scenario)

    def test_permanent_ban_sends_null_end(self, member, moderator):
        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(ban_create)(actor=moderator, user=member, reason="for good")
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "banned", "data": {"reason": "for good", "ends_at": None}}
            assert (await communicator.receive_output(timeout=WAIT))["code"] == 4403

        run(scenario)

    def test_sessions_ended_is_forwarded_and_the_socket_stays(self, member):
        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(user_end_sessions)(actor=member, user=member)
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "sessions_ended", "data": {}}
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "pong", "data": {}}
            await communicator.disconnect()

        run(scenario)


class TestServiceHooks:
    def test_key_redeem_then_extension(self, member, moderator):
        product = ProductFactory.create(name="Loader", slug="loader")
        first, second = keys_generate(actor=moderator, product=product,
                                      duration=timedelta(days=30), count=2).codes
        expires: list[str] = []

        def redeem(code: str) -> None:
            expires.append(_iso(key_redeem(user=member, code=code).expires_at))

        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(redeem)(first)
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "key_redeemed",
                "data": {"product": "loader", "product_name": "Loader",
                         "expires_at": expires[0], "extended": False}}
            await sync_to_async(redeem)(second)
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "subscription_extended",
                "data": {"product": "loader", "product_name": "Loader",
                         "expires_at": expires[1], "extended": True}}
            await communicator.disconnect()

        run(scenario)

    def test_key_on_a_lapsed_subscription_is_a_new_period(self, member, moderator):
        product = ProductFactory.create(name="Loader", slug="loader")
        Subscription.objects.create(user=member, product=product,
                                    expires_at=timezone.now() - timedelta(days=1))
        code = keys_generate(actor=moderator, product=product, duration=timedelta(days=7),
                             count=1).codes[0]

        async def scenario() -> None:
            communicator = await _connected(member)
            subscription = await sync_to_async(key_redeem)(user=member, code=code)
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "key_redeemed",
                "data": {"product": "loader", "product_name": "Loader",
                         "expires_at": _iso(subscription.expires_at), "extended": False}}
            await communicator.disconnect()

        run(scenario)

    def test_staff_adjust(self, member, admin):
        product = ProductFactory.create(name="Loader", slug="loader")
        sub = Subscription.objects.create(user=member, product=product,
                                          expires_at=timezone.now() + timedelta(days=2))

        def adjust(days: int) -> None:
            subscription_adjust(actor=admin, subscription_id=sub.pk,
                                delta=timedelta(days=days), reason="goodwill")

        def expires() -> str:
            return _iso(Subscription.objects.get(pk=sub.pk).expires_at)

        async def scenario() -> None:
            communicator = await _connected(member)
            await sync_to_async(adjust)(5)
            data = {"product": "loader", "product_name": "Loader", "extended": True,
                    "expires_at": await sync_to_async(expires)()}
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "subscription_extended", "data": data}
            await sync_to_async(adjust)(-1)
            data = {**data, "extended": False, "expires_at": await sync_to_async(expires)()}
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "subscription_extended", "data": data}
            await communicator.disconnect()

        run(scenario)

    def test_role_change(self, member, admin, roles):
        _expect(member, lambda: user_set_role(actor=admin, user=member, role=roles["support"]),
                ("role_changed", {"role": "Support"}))

    def test_invite_used_reaches_the_inviter(self, member):
        invite = InviteFactory.create(created_by=member)
        _expect(member, lambda: user_register(invite_code=invite.code, username="newcomer",
                                              password="another horse battery",
                                              ip="203.0.113.7"),
                ("invite_used", {"username": "newcomer"}))

    def test_discord_link_and_unlink(self, member):
        code = link_code_create(discord_id=555000111, discord_username="member_on_discord")

        def link_then_unlink() -> None:
            link_code_consume(user=member, code=code)
            discord_unlink(user=member)

        _expect(member, link_then_unlink,
                ("discord_linked", {"discord_username": "member_on_discord"}),
                ("discord_unlinked", {}))

    def test_staff_sets_password(self, member, admin):
        _expect(member, lambda: user_set_password(actor=admin, user=member,
                                                  password="a brand new horse"),
                ("sessions_ended", {}))

    def test_refused_change_sends_nothing(self, member, support, roles):
        def refused() -> None:
            with pytest.raises(PermissionDenied):
                user_set_role(actor=support, user=member, role=roles["support"])

        _expect(member, refused)



def _expired(user: User, product: Any, at: Any) -> Subscription:
    return Subscription.objects.create(user=user, product=product, started_at=at - timedelta(
        days=30), expires_at=at)


class TestExpiryJob:
    @pytest.fixture
    def pushes(self, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, dict[str, Any]]]:
        sent: list[tuple[int, str, dict[str, Any]]] = []
        monkeypatch.setattr(realtime, "_send_all", sent.extend)
        return sent

    def test_pushes_to_the_member_once(self, member, product):
        now = timezone.now()
        subscription = _expired(member, product, now - timedelta(seconds=30))

        async def scenario() -> None:
            communicator = await _connected(member)
            assert await sync_to_async(subscriptions_notify_expired)(now=now) == 1
            assert await communicator.receive_json_from(timeout=WAIT) == {
                "event": "subscription_expired",
                "data": {"product": "loader", "product_name": "Loader",
                         "expires_at": _iso(subscription.expires_at)}}
            # The next runs (the same minute again, then the next one) push nothing more.
            assert await sync_to_async(subscriptions_notify_expired)(now=now) == 0
            assert await sync_to_async(subscriptions_notify_expired)(
                now=now + timedelta(minutes=1)) == 0
            assert await communicator.receive_nothing(timeout=QUIET)
            await communicator.disconnect()

        run(scenario)

    def test_windows_follow_each_other(self, member, product, pushes):
        t1 = timezone.now()
        _expired(member, product, t1 - timedelta(minutes=5))
        later = _expired(UserFactory.create(), product, t1 + timedelta(seconds=30))
        _expired(UserFactory.create(), product, t1 + timedelta(days=1))  # still running
        assert subscriptions_notify_expired(now=t1) == 1
        assert [(user_id, event) for user_id, event, _ in pushes] == [
            (member.pk, "subscription_expired")]
        pushes.clear()
        assert subscriptions_notify_expired(now=t1 + timedelta(minutes=1)) == 1
        assert [user_id for user_id, _, _ in pushes] == [later.user_id]
        pushes.clear()
        assert subscriptions_notify_expired(now=t1 + timedelta(minutes=2)) == 0
        assert pushes == []

    def test_lookback_is_bounded(self, member, product, pushes):
        now = timezone.now()
        _expired(member, product, now - realtime.EXPIRED_LOOKBACK - timedelta(minutes=1))
        recent = _expired(UserFactory.create(), product, now - timedelta(minutes=10))
        assert subscriptions_notify_expired(now=now) == 1  # no mark yet: one lookback
        assert [user_id for user_id, _, _ in pushes] == [recent.user_id]
        # A mark from long ago (the worker was stopped) is no older than the lookback either.
        pushes.clear()
        cache.set(realtime.EXPIRED_MARK_KEY, now - timedelta(days=2), timeout=None)
        assert subscriptions_notify_expired(now=now) == 1
        assert [user_id for user_id, _, _ in pushes] == [recent.user_id]

    def test_a_run_in_progress_is_not_doubled(self, member, product, pushes):
        _expired(member, product, timezone.now() - timedelta(minutes=1))
        cache.add(realtime.EXPIRED_LOCK_KEY, "1", timeout=60)
        assert subscriptions_notify_expired() == 0
        cache.delete(realtime.EXPIRED_LOCK_KEY)
        assert subscriptions_notify_expired() == 1
        assert len(pushes) == 1

    def test_banned_members_are_skipped(self, member, product, pushes):
        _expired(member, product, timezone.now() - timedelta(minutes=1))
        User.objects.filter(pk=member.pk).update(is_active=False)
        assert subscriptions_notify_expired() == 0
        assert pushes == []

    def test_scheduled_every_minute(self, member, product, pushes):
        assert {s.name: (s.func, s.minutes) for s in SCHEDULES}["zspb:member-expiry-push"] == (
            "core.tasks.notify_expired_subscriptions", 1)
        _expired(member, product, timezone.now() - timedelta(minutes=1))
        assert tasks.notify_expired_subscriptions() == 1


def _open(url: str) -> Any:
    # Straight to loopback, whatever proxy the environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(url, timeout=WAIT)


class TestServedByUvicorn:
    """A real uvicorn (the asgi_server fixture) serves HTTP and the WebSocket on one port."""

    def _ws(self, base: str, user: User | None) -> Any:
        from websockets.sync.client import connect

        headers = {"Origin": base}
        if user is not None:
            headers["Cookie"] = _session_cookie(user)
        return connect(base.replace("http://", "ws://", 1) + "/ws/member/",
                       additional_headers=headers, proxy=None, open_timeout=WAIT)

    def test_http_and_websocket_on_one_port(self, asgi_server, member):
        with _open(f"{asgi_server}/api/health") as response:
            assert response.status == 200
            assert json.loads(response.read())["database"] is True
        with self._ws(asgi_server, member) as socket:
            socket.send(json.dumps({"type": "ping"}))
            assert json.loads(socket.recv(timeout=WAIT)) == {"event": "pong", "data": {}}
            with transaction.atomic():
                member_notify(user_id=member.pk, event="role_changed", data={"role": "Admin"})
            assert json.loads(socket.recv(timeout=WAIT)) == {
                "event": "role_changed", "data": {"role": "Admin"}}

    def test_anonymous_sees_4401_and_banned_4403(self, asgi_server, member, moderator):
        from websockets.exceptions import ConnectionClosed

        with self._ws(asgi_server, None) as socket, pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        with self._ws(asgi_server, member) as socket:
            socket.send(json.dumps({"type": "ping"}))
            socket.recv(timeout=WAIT)  # connected and in its group
            ban_create(actor=moderator, user=member, reason="spam")
            assert json.loads(socket.recv(timeout=WAIT)) == {
                "event": "banned", "data": {"reason": "spam", "ends_at": None}}
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_an_idle_member_socket_outlives_the_channel_layers_blocking_pop() -> None:
    """channels_redis waits for a message with a 5 s blocking pop; redis-py 8's default read
    timeout is also 5 s, which killed every socket left idle for 5 s (seen in the production
    smoke test). The configured layer must wait past one pop without a Redis error."""
    if "RedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("the in-memory channel layer (no REDIS_URL) has no blocking pop")
    from channels.layers import channel_layers

    async def idle_receive() -> str:
        # A layer of its own: the shared one may be bound to another test's event loop.
        layer = channel_layers.make_backend("default")
        channel = await layer.new_channel()
        try:
            await asyncio.wait_for(layer.receive(channel), layer.brpop_timeout + 1.5)
        except asyncio.TimeoutError:
            return "still waiting"
        return "a message"

    assert async_to_sync(idle_receive)() == "still waiting"
