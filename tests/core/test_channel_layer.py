"""core.channel_layer: channels_redis' core layer with batched receive and group sends.

Two layer instances on one prefix stand for two processes sharing Redis: the "sender" (the
job worker) and the "worker" (a web worker whose sockets are the worker's channels). Each test
runs one event loop (asyncio.run) with fresh layers. Needs REDIS_URL (the Redis layer).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest
import redis
from channels.consumer import AsyncConsumer
from channels.layers import channel_layers
from channels_redis import core as channels_redis_core
from django.conf import settings

from core import channel_layer
from core.channel_layer import BatchingRedisChannelLayer

Make = Callable[..., BatchingRedisChannelLayer]
Layer = BatchingRedisChannelLayer


@pytest.fixture
def make() -> Iterator[Make]:
    if "BatchingRedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("the Redis channel layer needs REDIS_URL")
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]["CONFIG"]  # type: ignore[assignment]
    prefix = f"zspb:test:{secrets.token_hex(4)}:"

    def layer(**overrides: Any) -> BatchingRedisChannelLayer:
        return BatchingRedisChannelLayer(**{**config, "prefix": prefix, **overrides})

    yield layer
    client = redis.Redis.from_url(str(settings.REDIS_URL))
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _commands(layer: BatchingRedisChannelLayer) -> list[str]:
    """The names of the Redis commands `layer` sends from now on (this event loop)."""
    seen: list[str] = []
    client = layer.connection(0)
    execute = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        seen.append(str(args[0]).upper())
        return await execute(*args, **options)

    client.execute_command = counted
    return seen


def _run(make: Make, scenario: Callable[[Layer, Layer], Awaitable[None]],
         **overrides: Any) -> None:
    """`scenario(sender, worker)` in an event loop of its own, with two layers on one prefix
    (two processes sharing Redis); then the worker's channels are flushed and the sender's
    connections closed, whatever the scenario did."""
    async def main() -> None:
        sender, worker = make(**overrides), make(**overrides)
        try:
            await scenario(sender, worker)
        finally:
            await worker.flush()
            await sender.close_pools()

    asyncio.run(main())


async def _sockets(layer: BatchingRedisChannelLayer, count: int) -> list[str]:
    """`count` open pages, the n-th in group member.<n>."""
    channels = [await layer.new_channel() for _ in range(count)]
    for n, channel in enumerate(channels):
        await layer.group_add(f"member.{n}", channel)
    return channels


async def _listen(layer: BatchingRedisChannelLayer, channel: str, count: int,
                  into: list[dict[str, Any]]) -> None:
    while len(into) < count:
        into.append(await layer.receive(channel))


async def _nothing(layer: BatchingRedisChannelLayer, channel: str) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), 0.3)
    except asyncio.TimeoutError:
        return True
    return False


def _event(seq: int) -> dict[str, Any]:
    return {"type": "member.event", "event": "subscription_expired", "data": {"seq": seq}}


def _seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["data"]["seq"]) for m in messages]


# Digests of the channels_redis 4.3.0 (and channels 4.3.2) code the batching relies on or
# stands in for. A difference means the new version must be read before the pin moves (see
# the module docstring of core/channel_layer.py and api/realtime.py's dispatch).
PINNED_SOURCES = {
    "RedisChannelLayer.__init__": "d0550cf4bccb9a90",
    "RedisChannelLayer.receive": "158a09895d9a7c8e",
    "RedisChannelLayer.receive_single": "5a498bb3a2545bf1",
    "RedisChannelLayer._brpop_with_clean": "363a120edcef61d5",
    "RedisChannelLayer._clean_receive_backup": "7142822d70070e39",
    "RedisChannelLayer.group_send": "c9623ea6ccfa7308",
    "RedisChannelLayer._map_channel_keys_to_connection": "789f9193b4536625",
    "RedisChannelLayer._group_key": "7e89938e1cb20f26",
    "RedisChannelLayer._backup_channel_name": "3add6e0ef708a9de",
    "RedisChannelLayer.connection": "d975ed8505cf7594",
    "ChannelLock": "d1f901cf090926a9",
    "BoundedQueue": "dbd493640e7726fb",
    "AsyncConsumer.dispatch": "39f34e7d4fb0f655",
}


def test_pinned_to_the_channels_redis_it_was_written_for() -> None:
    assert version("channels_redis") == channel_layer.PINNED_CHANNELS_REDIS, (
        "channels_redis changed: core/channel_layer.py relies on its internals; read the new "
        "core.py, then move PINNED_CHANNELS_REDIS and PINNED_SOURCES")
    owners = {"RedisChannelLayer": channels_redis_core.RedisChannelLayer,
              "ChannelLock": channels_redis_core.ChannelLock,
              "BoundedQueue": channels_redis_core.BoundedQueue,
              "AsyncConsumer": AsyncConsumer}
    found = {}
    for name in PINNED_SOURCES:
        owner, _, attribute = name.partition(".")
        obj = getattr(owners[owner], attribute) if attribute else owners[owner]
        found[name] = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    assert found == PINNED_SOURCES, "channels(_redis) code the batching relies on changed"


def test_the_settings_use_the_batching_layer(make: Make) -> None:
    assert isinstance(channel_layers.make_backend("default"), BatchingRedisChannelLayer)


def test_waiting_sockets_get_a_batch_in_order_in_two_round_trips(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        sockets = await _sockets(worker, 4)
        received: list[list[dict[str, Any]]] = [[] for _ in sockets]
        listeners = [asyncio.ensure_future(_listen(worker, channel, 50, into))
                     for channel, into in zip(sockets, received, strict=True)]
        await asyncio.sleep(0.3)  # every socket waits; one receive is in the blocking pop
        by_worker, by_sender = _commands(worker), _commands(sender)
        await sender.group_send_many([(f"member.{n % 4}", _event(n)) for n in range(200)])
        await asyncio.wait_for(asyncio.gather(*listeners), 10)
        for n, messages in enumerate(received):
            assert _seqs(messages) == list(range(n, 200, 4))
            assert all("__asgi_channel__" not in m for m in messages)
        assert by_sender == ["EVAL", "EVAL"]  # read the groups, push the messages
        # The blocking pop returned one; the script that backed it up took the 199 behind
        # it, and the cleaner emptied the backup queue (the core layer: ~4 per message).
        await worker.wait_received()
        assert by_worker == ["EVAL", "ZPOPMIN"]
        assert not await sender.connection(0).zcard(f"{worker.prefix}specific."
                                                   f"{worker.client_prefix}!$inflight")

    _run(make, scenario)


def test_messages_already_waiting_are_taken_in_one_round_trip(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        sockets = await _sockets(worker, 2)
        await sender.group_send_many([(f"member.{n % 2}", _event(n)) for n in range(100)])
        by_worker = _commands(worker)
        received: list[list[dict[str, Any]]] = [[], []]
        await asyncio.wait_for(asyncio.gather(
            *(_listen(worker, c, 50, into) for c, into in zip(sockets, received, strict=True))),
            10)
        assert _seqs(received[0]) == list(range(0, 100, 2))
        assert _seqs(received[1]) == list(range(1, 100, 2))
        await worker.wait_received()
        assert by_worker == ["EVAL", "ZPOPMIN"]

    _run(make, scenario)


def test_batches_sent_one_after_another_keep_their_order(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        (socket_,) = await _sockets(worker, 1)
        for n in range(60):  # closer together than a batch's scores are apart
            await sender.group_send_many([("member.0", _event(n))])
        received: list[dict[str, Any]] = []
        await asyncio.wait_for(_listen(worker, socket_, 60, received), 10)
        assert _seqs(received) == list(range(60))

    _run(make, scenario)


def test_group_send_is_a_batch_of_one(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        sockets = await _sockets(worker, 1)
        await worker.group_add("member.0", second := await worker.new_channel())
        by_sender = _commands(sender)
        await sender.group_send("member.0", _event(7))
        assert by_sender == ["EVAL", "EVAL"]
        for channel in (*sockets, second):  # every page of the member
            assert _seqs([await asyncio.wait_for(worker.receive(channel), 5)]) == [7]

    _run(make, scenario)


def test_channel_capacity_is_respected(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        sockets = await _sockets(worker, 5)
        with caplog.at_level(logging.INFO, logger="zspb.channel_layer"):
            await sender.group_send_many([(f"member.{n}", _event(n)) for n in range(5)])
        assert "2 of 5 messages over their channel's capacity" in caplog.text
        received = [await asyncio.wait_for(worker.receive(c), 5) for c in sockets[:3]]
        assert _seqs(received) == [0, 1, 2]
        assert await _nothing(worker, sockets[3])
        assert await _nothing(worker, sockets[4])

    _run(make, scenario, channel_capacity={"specific.*": 3})


def test_expired_messages_and_group_members_are_dropped(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        live, stale = await _sockets(worker, 2)
        redis_ = sender.connection(0)
        key = f"{worker.prefix}specific.{worker.client_prefix}!"
        # Left by a page that went long ago: older than the message expiry.
        await redis_.zadd(key, {b"an expired message": time.time() - worker.expiry - 5})
        # A group membership older than the group expiry.
        await redis_.zadd(worker._group_key("member.1"), {stale: 1.0})
        await sender.group_send_many([("member.0", _event(0)), ("member.1", _event(1))])
        assert await redis_.zcard(key) == 1
        assert not await redis_.exists(worker._group_key("member.1"))
        assert 0 < await redis_.ttl(key) <= worker.expiry
        assert _seqs([await asyncio.wait_for(worker.receive(live), 5)]) == [0]
        assert await _nothing(worker, stale)

    _run(make, scenario)


def test_a_message_for_a_closed_socket_is_dropped(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        closed, open_ = await _sockets(worker, 2)
        # The closed page's receive was cancelled, and it is still in its group (a page that
        # went before its group_discard ran).
        waiting = asyncio.ensure_future(worker.receive(closed))
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await sender.group_send_many([("member.0", _event(0)), ("member.1", _event(1)),
                                      ("member.0", _event(2)), ("member.1", _event(3))])
        received: list[dict[str, Any]] = []
        await asyncio.wait_for(_listen(worker, open_, 2, received), 5)
        assert _seqs(received) == [1, 3]
        assert await _nothing(worker, open_)

    _run(make, scenario)


def test_messages_a_cancelled_receive_had_taken_come_first(make: Make) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        (socket_,) = await _sockets(worker, 1)
        key = f"{worker.prefix}specific.{worker.client_prefix}!"
        taken = worker.serialize({**_event(0), "__asgi_channel__": [socket_]})
        # Taken into the backup queue by a receive that was cancelled before buffering it.
        await sender.connection(0).zadd(key + "$inflight", {taken: time.time() - 1})
        await sender.group_send_many([("member.0", _event(1))])
        received: list[dict[str, Any]] = []
        await asyncio.wait_for(_listen(worker, socket_, 2, received), 5)
        assert _seqs(received) == [0, 1]

    _run(make, scenario)


def test_an_unreadable_message_is_dropped_alone(make: Make,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(sender: Layer, worker: Layer) -> None:
        (socket_,) = await _sockets(worker, 1)
        key = f"{worker.prefix}specific.{worker.client_prefix}!"
        await sender.group_send_many([("member.0", _event(0))])
        await sender.connection(0).zadd(key, {b"x" * 12 + b"\xc1": time.time() + 1})
        await sender.group_send_many([("member.0", _event(1))])
        received: list[dict[str, Any]] = []
        await asyncio.wait_for(_listen(worker, socket_, 2, received), 5)
        assert _seqs(received) == [0, 1]

    _run(make, scenario)
    assert "dropped an unreadable channel layer message" in caplog.text


def test_a_batch_larger_than_a_chunk_or_a_take(make: Make,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_layer, "SEND_CHUNK", 7)
    monkeypatch.setattr(channel_layer, "DRAIN_MAX", 5)

    async def scenario(sender: Layer, worker: Layer) -> None:
        sockets = await _sockets(worker, 3)
        # Groups without a page open (most of a minute's expiries) are read and skipped.
        await sender.group_send_many([(f"member.{n % 5}", _event(n)) for n in range(40)])
        received: list[list[dict[str, Any]]] = [[] for _ in sockets]
        await asyncio.wait_for(asyncio.gather(
            *(_listen(worker, c, 8, into) for c, into in zip(sockets, received, strict=True))),
            10)
        for n, messages in enumerate(received):
            assert _seqs(messages) == list(range(n, 40, 5))

    _run(make, scenario)
