"""The Redis channel layer, batched at both ends (issue 12: WebSocket fan-out).

channels_redis' core layer gives every web worker one process-wide Redis channel that carries
the messages of all its sockets, and pops it one message at a time: a cleanup script, the
blocking pop, a copy into the backup ("in-flight") queue and, from a cleaner task that the next
pop waits for, its removal from there, so about four sequential round trips per message for
the whole process. Its group_send costs about four more per group on the sending side. A
thousand members' events thus took over a second to reach a thousand sockets on one worker.

This subclass keeps the layer's storage, semantics and failure behaviour (the same keys, the
same backup queue put back at the head of the channel before each pop, the same capacity and
expiry rules, the same errors when Redis is down) and changes how many messages travel per
round trip:

- receive: each take moves up to DRAIN_MAX of the oldest messages of the process channel into
  the backup queue in one script, and the cleaner removes them all in one command; when the
  channel is empty, the blocking pop waits as before and the messages that queued behind the
  first are taken in the same script that backs the first one up;
- `group_send_many`: many (group, message) sends, each as group_send would do it in turn, in
  one script per Redis host reading the groups and one pushing the messages.

Pinned to channels_redis 4.3.0 (PINNED_CHANNELS_REDIS): this relies on its internals, namely
that `receive()` calls `receive_single(<process channel>)` holding its receive lock and puts the
returned message into `receive_buffer` with no await in between, on `receive_clean_locks`,
`receive_cleaners`, `_backup_channel_name`, `_group_key`, `_map_channel_keys_to_connection`
and the key layout. tests/core/test_channel_layer.py fails when the installed version or the
source of those methods differs; read the new version's core.py before moving the pin.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

from channels_redis.core import RedisChannelLayer

log = logging.getLogger("zspb.channel_layer")

PINNED_CHANNELS_REDIS = "4.3.0"
# Messages taken per round trip by a receiving worker. A worker with more sockets than this
# that all hear at once takes the rest in the next round trip.
DRAIN_MAX = 1000
# Groups read, and messages pushed, per script on the sending side (bounds a script's size and
# how long it holds Redis).
SEND_CHUNK = 1000

# Put the backup queue back at the head of the channel (the parent's cleanup before each pop:
# messages a cancelled receive had taken are not lost), or, after a blocking pop, back up the
# message it returned (ARGV[2], score ARGV[3]); then move up to ARGV[1] more of the oldest
# messages into the backup queue and return them, oldest first, as one string of netstrings
# ("<length>:<bytes>"): redis-py parses a reply in Python element by element, and a
# thousand-element reply cost more than the script.
_TAKE = """
if ARGV[2] then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
else
    local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = #backed_up, 1, -2 do
        redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
    end
    redis.call('DEL', KEYS[2])
end
local taken = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local out = {}
for i = 1, #taken, 2 do
    redis.call('ZADD', KEYS[2], taken[i + 1], taken[i])
    out[#out + 1] = #taken[i] .. ':' .. taken[i]
end
return table.concat(out)
"""

# The channels of each group after dropping those older than the group expiry (ARGV[1]), as
# group_send reads them, as one string: a line "<i> <channel> <channel>..." for each group
# KEYS[i] that has any (channel names hold neither spaces nor newlines).
_GROUP_CHANNELS = """
local out = {}
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
    local names = redis.call('ZRANGE', KEYS[i], 0, -1)
    if #names > 0 then
        out[#out + 1] = i .. ' ' .. table.concat(names, ' ')
    end
end
return table.concat(out, '\\n')
"""

# group_send's rules for a batch, channel by channel: drop the channel's expired messages
# (score <= ARGV[1]); push its messages in order, the k-th with score ARGV[3] + (k - 1) *
# ARGV[4], unless the channel already holds its capacity; the channel then lives for ARGV[2]
# seconds. For channel KEYS[j], ARGV[3 + 2j] is its capacity and ARGV[4 + 2j] how many of the
# messages that follow the 2m + 4 arguments are its own, channel after channel. Returns how
# many messages were over capacity.
_PUSH = """
local cutoff, expiry = ARGV[1], ARGV[2]
local first, step = tonumber(ARGV[3]), tonumber(ARGV[4])
local at = 4 + 2 * #KEYS
local over = 0
for j = 1, #KEYS do
    local key = KEYS[j]
    local capacity, count = tonumber(ARGV[3 + 2 * j]), tonumber(ARGV[4 + 2 * j])
    redis.call('ZREMRANGEBYSCORE', key, 0, cutoff)
    local held = redis.call('ZCARD', key)
    local added = 0
    for k = 1, count do
        if held < capacity then
            redis.call('ZADD', key, first + (k - 1) * step, ARGV[at + k])
            held = held + 1
            added = added + 1
        else
            over = over + 1
        end
    end
    if added > 0 then
        redis.call('EXPIRE', key, expiry)
    end
    at = at + count
end
return over
"""

# Scores of one batch's messages: 1 µs apart, so that a channel's messages keep their order
# (equal scores would sort by the serialized bytes, which start with a random prefix). At
# time.time()'s magnitude a double resolves about 0.24 µs, so consecutive scores differ.
SCORE_STEP = 1e-6

Send = tuple[str, dict[str, Any]]  # (group, message)


class BatchingRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]  # untyped parent
    # The score of the last message this layer pushed (see SCORE_STEP).
    _last_score = 0.0

    async def receive_single(self, channel: str) -> tuple[Any, dict[str, Any]]:
        """The parent's receive_single for the process channel, a batch at a time.

        Returns the LAST message taken; the others are put into their channels' receive
        buffers here, in order, and receive() then puts the returned one after them (nothing
        awaits in between), so each channel's messages keep their order.
        """
        if "!" not in channel:  # a plain channel: no receive buffer to fill
            return await super().receive_single(channel)  # type: ignore[no-any-return]
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        assert channel.endswith("!")
        index = self.consistent_hash(channel)
        channel_key = self.prefix + channel
        while True:
            messages = self._unpack(channel, await self._take_batch(index, channel_key))
            if messages:
                break
        for target, message in messages[:-1]:
            for name in target if isinstance(target, list) else [target]:
                self.receive_buffer[name].put_nowait(message)
        return messages[-1]

    async def _take_batch(self, index: int, channel_key: str) -> list[bytes]:
        """At least one message of the channel, now in its backup queue, and the cleaner
        that removes them from there started (the parent does both a message at a time)."""
        connection = self.connection(index)
        backup = self._backup_channel_name(channel_key)
        await self.receive_clean_locks.acquire(channel_key)
        try:
            # Cancelling here loses nothing: the taken messages are in the backup queue and the
            # next take puts them back.
            contents = _netstrings(await connection.eval(
                _TAKE, 2, channel_key, backup, DRAIN_MAX))
            while not contents:
                popped = await connection.bzpopmin(channel_key, timeout=self.brpop_timeout)
                if popped is None:
                    contents = _netstrings(await connection.eval(
                        _TAKE, 2, channel_key, backup, DRAIN_MAX))
                    continue
                _, member, score = popped
                contents = [member, *_netstrings(await connection.eval(
                    _TAKE, 2, channel_key, backup, DRAIN_MAX - 1, member, repr(float(score))))]
            cleaner = asyncio.ensure_future(
                connection.zpopmin(backup, len(contents)))
            self.receive_cleaners.append(cleaner)

            def _cleanup_done(done: asyncio.Future[Any]) -> None:
                self.receive_cleaners.remove(done)
                self.receive_clean_locks.release(channel_key)

            cleaner.add_done_callback(_cleanup_done)
        except BaseException:
            self.receive_clean_locks.release(channel_key)
            raise
        return contents

    def _unpack(self, channel: str, contents: list[bytes]) -> list[tuple[Any, dict[str, Any]]]:
        """(channel name or names, message) of each content, as the parent's receive_single
        unpacks one. A content that cannot be read is logged and dropped: it is already out
        of Redis, and raising would lose the rest of the batch with it."""
        messages = []
        for content in contents:
            try:
                message = self.deserialize(content)
            except Exception:
                log.exception("dropped an unreadable channel layer message")
                continue
            messages.append((message.pop("__asgi_channel__", channel), message))
        return messages

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """One group send through the batched path: two round trips instead of four, and
        ordered with the batches' scores."""
        await self.group_send_many([(group, message)])

    async def group_send_many(self, sends: Sequence[Send]) -> None:
        """group_send(group, message) for each pair, in order, in two round trips per Redis
        host and SEND_CHUNK sends (the parent's group_send costs four per send).

        The same rules as group_send: channels older than the group expiry leave the group,
        a channel holding its capacity gets nothing more (logged), expired messages are
        dropped, each channel gets the messages in the order of `sends`.
        """
        for start in range(0, len(sends), SEND_CHUNK):
            await self._group_send_chunk(sends[start:start + SEND_CHUNK])

    async def _group_send_chunk(self, sends: Sequence[Send]) -> None:
        by_host: dict[int, list[int]] = collections.defaultdict(list)
        for n, (group, _message) in enumerate(sends):
            assert self.require_valid_group_name(group), "Group name not valid"
            by_host[self.consistent_hash(group)].append(n)
        members: list[list[str]] = [[] for _ in sends]
        group_cutoff = int(time.time()) - self.group_expiry
        for host, indexes in by_host.items():
            keys = [self._group_key(sends[n][0]) for n in indexes]
            found: bytes = await self.connection(host).eval(
                _GROUP_CHANNELS, len(keys), *keys, group_cutoff)
            for line in found.decode("utf8").splitlines():
                position, *names = line.split(" ")
                members[indexes[int(position) - 1]] = names
        # Per host and channel key: its capacity and its messages, in the order of the sends.
        pushes: dict[int, dict[str, tuple[int, list[bytes]]]] = collections.defaultdict(dict)
        for (_group, message), channels in zip(sends, members, strict=True):
            if not channels:
                continue
            by_connection, key_message, key_capacity = self._map_channel_keys_to_connection(
                channels, message)
            for host, channel_keys in by_connection.items():
                for key in channel_keys:
                    pushes[host].setdefault(key, (key_capacity[key], []))[1].append(
                        key_message[key])
        now = time.time()
        cutoff = int(now) - int(self.expiry)
        # Never below the previous batch's last score: a channel's next message sorts after
        # the ones this process pushed before, however close together the batches.
        first = max(now, self._last_score + SCORE_STEP)
        for host, channels_ in pushes.items():
            keys = list(channels_)
            counts: list[int] = []
            for capacity, payloads in channels_.values():
                counts += [capacity, len(payloads)]
            over = await self.connection(host).eval(
                _PUSH, len(keys), *keys, cutoff, int(self.expiry), repr(first),
                repr(SCORE_STEP), *counts,
                *(payload for _, payloads in channels_.values() for payload in payloads))
            longest = max(len(payloads) for _, payloads in channels_.values())
            self._last_score = max(self._last_score, first + (longest - 1) * SCORE_STEP)
            if over:
                log.info("%s of %s messages over their channel's capacity in a batch of %s "
                         "group sends", over, sum(counts[1::2]), len(sends))


def _netstrings(reply: bytes) -> list[bytes]:
    """The strings of a "<length>:<bytes>..." reply."""
    out, at, view = [], 0, memoryview(reply)
    while at < len(reply):
        colon = reply.index(b":", at)
        start = colon + 1
        end = start + int(reply[at:colon])
        out.append(bytes(view[start:end]))
        at = end
    return out
