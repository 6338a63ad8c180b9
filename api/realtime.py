"""The WebSocket of members' open pages: `/ws/member/` pushes the events that
`core.services.realtime.member_notify` sends to the member's group.

Server to client: `{"event": <name>, "data": {...}}` (names in `core.services.realtime.EVENTS`),
plus `{"event": "pong", "data": {}}` in answer to `{"type": "ping"}`. Anything else the client
sends is ignored. Close codes: 4401 not logged in (or banned, or the session ended), 4403
banned while connected (after the "banned" event).
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.services.realtime import member_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BANNED = 4403
# The client only ever sends pings; anything longer is not read.
CLIENT_MESSAGE_MAX = 1024


class MemberConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # Channels has no stubs
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            # Accepted first so the page sees the code and stops reconnecting: a refusal
            # before accepting reaches the browser as a bare HTTP 403 (close code 1006).
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = member_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None,
                      **kwargs: Any) -> None:
        if text_data is None or len(text_data) > CLIENT_MESSAGE_MAX:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong", "data": {}})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels (4.3.2, AsyncConsumer.dispatch) runs close_old_connections() on the one
        # sync thread before every handler: a thread hop per event, a thousand in a row when
        # the minute's expiries reach a worker's sockets. member_event uses no database
        # connection, so it is called directly; everything else goes through channels.
        if message.get("type") == "member.event":
            await self.member_event(message)
            return
        await super().dispatch(message)

    async def member_event(self, message: dict[str, Any]) -> None:
        """A "member.event" from the channel layer: forward it to the page."""
        if self.group is None:
            return
        event = str(message.get("event", ""))
        await self.send_json({"event": event, "data": message.get("data") or {}})
        if event == "banned":
            await self.close(code=CLOSE_BANNED)
