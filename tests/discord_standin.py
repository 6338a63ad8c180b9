"""A local Discord stand-in: a real HTTP server on 127.0.0.1 serving the REST endpoints the
project uses, so tests exercise the real HTTP client (core/discord/rest.py) end to end.

Endpoints, under /api/v10 like Discord's:
- GET    /guilds/{g}/members/{u}                member (roles as string ids)
- GET    /guilds/{g}/members?limit=&after=      member list page, ordered by id
- PUT    /guilds/{g}/members/{u}/roles/{r}      add one role (204)
- DELETE /guilds/{g}/members/{u}/roles/{r}      remove one role (204)
- POST   /webhooks/{id}/{token}[?wait=true]     execute a webhook

State: members and their roles, guild roles, roles above the bot (403/50013), webhooks and the
messages they received (with the pings Discord would have made given `allowed_mentions`).

Discord's behaviour that the client must respect is enforced and recorded: the bot token
(401), per-bucket limits with X-RateLimit-* headers (an unscripted 429 is a *violation*), the
global 50 requests per second. Every request is logged with its receipt time, so tests can
assert what the client did (no more than N per second, waited retry_after after a 429...).

Scripting: `script(...)` queues faults for matching requests: 429 with retry_after in body
and/or header (optionally global), 401, 403/50013, 404/10007, 5xx, slow answers, dropped
connections; `storm(n, ...)` a run of 429s, global or on a route's bucket. `fail_all(status)`
fails everything; `stop()`/`start()` take the server down (connection refused) and up again
on the same port. `invalid()` counts 401/403/429 answers per window as Discord's ban does;
`max_in_window()` and `per_second()` count the requests received.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_PREFIX = "/api/v10"
CONTENT_MAX = 2000

UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
UNKNOWN_WEBHOOK = 10015
MISSING_PERMISSIONS = 50013
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035
EMPTY_MESSAGE = 50006

# Bucket limits per route group: (requests, period in seconds). Tests may change them.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "member.get": (10, 0.5),
    "members.list": (10, 0.5),
    "member.roles": (10, 0.5),
    "webhook": (5, 0.5),
}

_MENTION = re.compile(r"@(everyone|here)|<@!?(\d+)>|<@&(\d+)>")


@dataclass
class Fault:
    """One scripted answer. status None: answer normally (after `delay`)."""

    status: int | None = None
    code: int = 0
    message: str = ""
    retry_after: float | None = None
    is_global: bool = False
    retry_after_in: str = "both"  # "body", "header" or "both"
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def ratelimit(cls, retry_after: float, *, is_global: bool = False,
                  where: str = "both") -> Fault:
        return cls(status=429, message="You are being rate limited.", retry_after=retry_after,
                   is_global=is_global, retry_after_in=where)

    @classmethod
    def forbidden(cls) -> Fault:
        return cls(status=403, code=MISSING_PERMISSIONS, message="Missing Permissions")

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls(status=401, code=0, message="401: Unauthorized")

    @classmethod
    def unknown_member(cls) -> Fault:
        return cls(status=404, code=UNKNOWN_MEMBER, message="Unknown Member")

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls(status=status, message="Internal Server Error")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def disconnect(cls) -> Fault:
        return cls(drop=True)


@dataclass
class _Rule:
    method: str | None
    pattern: re.Pattern[str] | None
    faults: list[Fault]
    repeat: bool

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.pattern is None or bool(self.pattern.search(path))
        )


@dataclass
class Served:
    """One request as the stand-in saw it."""

    received: float  # time.monotonic() when the request was read
    method: str
    path: str
    group: str
    major: str
    status: int | None = None  # None: connection dropped without an answer
    sent: float = 0.0  # when the answer was written
    scripted: bool = False
    retry_after: float | None = None
    is_global: bool = False
    audit_reason: str | None = None
    authorization: str | None = None


@dataclass
class WebhookMessage:
    webhook: str
    content: str
    allowed_mentions: Any
    username: str | None
    pings: list[str]


@dataclass
class Webhook:
    name: str
    id: int
    token: str
    messages: list[WebhookMessage] = field(default_factory=list)
    deleted: bool = False


@dataclass
class _Bucket:
    window_start: float = 0.0
    window_end_wall: float = 0.0  # X-RateLimit-Reset: the same for every answer in a window
    count: int = 0


def pings(content: str, allowed: Any) -> list[str]:
    """What Discord would ping for this content under these allowed_mentions."""
    if isinstance(allowed, dict):
        parse = set(allowed.get("parse") or [])
        users = {str(u) for u in allowed.get("users") or []}
        roles = {str(r) for r in allowed.get("roles") or []}
    else:  # absent: webhooks parse everything by default
        parse, users, roles = {"everyone", "users", "roles"}, set(), set()
    found: list[str] = []
    for match in _MENTION.finditer(content):
        everyone, user, role = match.groups()
        if everyone and "everyone" in parse:
            found.append(f"@{everyone}")
        elif user and ("users" in parse or user in users):
            found.append(f"user:{user}")
        elif role and ("roles" in parse or role in roles):
            found.append(f"role:{role}")
    return found


def _densest(times: list[float], window: float) -> int:
    """Most of `times` within any sliding window of `window` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    standin: DiscordStandin


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    # Headers and body leave in two writes: with Nagle's algorithm the body waited for the
    # client's delayed ACK (~40 ms a request on loopback), which Discord does not cost.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _dispatch


class DiscordStandin:
    def __init__(
        self,
        *,
        token: str = "standin-bot-token",  # noqa: S107
        guild_id: int = 900_000_000_000_000_001,
        global_limit: int = 50,
    ) -> None:
        self.token = token
        self.guild_id = guild_id
        self.global_limit = global_limit
        self.limits = dict(DEFAULT_LIMITS)
        self.port = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._down = True
        self._fail_all: int | None = None
        self._slow_all = 0.0
        self._rules: list[_Rule] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.members: dict[int, set[int]] = {}
        self.guild_roles: set[int] = set()  # empty: any role id exists
        self.unmanageable: set[int] = set()  # above the bot's role: 403/50013
        self.webhooks: dict[str, Webhook] = {}
        self.log: list[Served] = []

    # Life cycle ---------------------------------------------------------------------------
    def start(self) -> DiscordStandin:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        self.port = server.server_address[1]
        self._server = server
        self._down = False
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: new connections are refused, open ones are dropped without an answer."""
        self._down = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.url + API_PREFIX

    # State --------------------------------------------------------------------------------
    def add_member(self, user_id: int, roles: Iterable[int] = ()) -> None:
        with self._lock:
            self.members[user_id] = set(roles)

    def remove_member(self, user_id: int) -> None:
        with self._lock:
            self.members.pop(user_id, None)

    def roles_of(self, user_id: int) -> set[int] | None:
        with self._lock:
            roles = self.members.get(user_id)
            return set(roles) if roles is not None else None

    def add_webhook(self, name: str) -> str:
        with self._lock:
            hook = Webhook(name=name, id=800_000_000_000_000_000 + len(self.webhooks) + 1,
                           token=f"tok-{name}-secret")
            self.webhooks[name] = hook
        return self.webhook_url(name)

    def webhook_url(self, name: str) -> str:
        hook = self.webhooks.get(name)
        if hook is None:
            return self.add_webhook(name)
        return f"{self.api_base}/webhooks/{hook.id}/{hook.token}"

    def delete_webhook(self, name: str) -> None:
        with self._lock:
            self.webhooks[name].deleted = True

    def messages(self, name: str) -> list[WebhookMessage]:
        with self._lock:
            return list(self.webhooks[name].messages)

    # Scripting ----------------------------------------------------------------------------
    def script(self, *faults: Fault, method: str | None = None, path: str | None = None,
               repeat: bool = False) -> None:
        """Answer the next matching requests with these faults, in order (forever if repeat)."""
        with self._lock:
            self._rules.append(_Rule(method=method, pattern=re.compile(path) if path else None,
                                     faults=list(faults), repeat=repeat))

    def clear_script(self) -> None:
        with self._lock:
            self._rules.clear()

    def fail_all(self, status: int | None) -> None:
        """Answer every request with this status (None: back to normal)."""
        self._fail_all = status

    def slow_all(self, seconds: float) -> None:
        self._slow_all = seconds

    # Inspection ---------------------------------------------------------------------------
    def served(self, *, group: str | None = None, method: str | None = None) -> list[Served]:
        with self._lock:
            return [s for s in self.log if (group is None or s.group == group)
                    and (method is None or s.method == method)]

    def violations(self) -> list[Served]:
        """429s the client caused by breaking a limit (as opposed to scripted ones)."""
        return [s for s in self.served() if s.status == 429 and not s.scripted]

    def max_in_window(self, seconds: float = 1.0) -> int:
        """Most requests received within any window of `seconds` (sliding)."""
        return _densest([s.received for s in self.served()], seconds)

    def invalid(self, *, window: float = 600.0) -> int:
        """Most 401/403/429 answers within any `window` seconds: what Discord counts against
        an IP (10,000 per 10 minutes bans it). "shared" 429s are not counted there, and this
        stand-in never sends them."""
        return _densest([s.received for s in self.served() if s.status in (401, 403, 429)],
                        window)

    def per_second(self) -> dict[int, int]:
        """Requests received in each whole second since the first one."""
        log = self.served()
        if not log:
            return {}
        first = min(s.received for s in log)
        counts: dict[int, int] = {}
        for s in log:
            second = int(s.received - first)
            counts[second] = counts.get(second, 0) + 1
        return counts

    def storm(self, count: int, *, retry_after: float, is_global: bool = False,
              method: str | None = None, path: str | None = None) -> None:
        """The next `count` matching requests are answered 429: global ones carry
        X-RateLimit-Global, per-route ones the bucket's headers; retry_after in both."""
        self.script(*[Fault.ratelimit(retry_after, is_global=is_global)] * count,
                    method=method, path=path)

    def waits_after_429(self, *, in_flight: float = 0.0) -> list[tuple[float, float]]:
        """(retry_after, how long the client actually waited) for every 429 answered.

        The wait is measured to the next request on the same bucket (any request if global).
        With concurrent senders, requests received less than `in_flight` seconds after the
        429 left are not counted: they were on their way before any sender could see it.
        """
        log = self.served()
        pairs: list[tuple[float, float]] = []
        for i, s in enumerate(log):
            if s.status != 429 or s.retry_after is None:
                continue
            later = [n for n in log[i + 1:] if n.received >= s.sent + in_flight and (
                s.is_global or (n.group, n.major) == (s.group, s.major))]
            if later:
                pairs.append((s.retry_after, later[0].received - s.sent))
        return pairs

    # Serving ------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, str, list[str]]:
        parts = [unquote(p) for p in path.removeprefix(API_PREFIX).split("/") if p]
        if len(parts) == 3 and parts[0] == "webhooks":
            return "webhook", parts[1], parts
        if len(parts) >= 3 and parts[0] == "guilds" and parts[2] == "members":
            if len(parts) == 3:
                return "members.list", parts[1], parts
            if len(parts) == 4:
                return "member.get", parts[1], parts
            if len(parts) == 6 and parts[4] == "roles":
                return "member.roles", parts[1], parts
        return "unknown", "", parts

    def _next_fault(self, method: str, path: str) -> Fault | None:
        for rule in self._rules:
            if rule.faults and rule.matches(method, path):
                if rule.repeat:
                    return rule.faults[0]
                fault = rule.faults.pop(0)
                return fault
        return None

    def _bucket_headers(self, group: str, major: str, now: float, *,
                        take: bool) -> tuple[bool, dict[str, str]]:
        """Count the request in its bucket; (allowed, X-RateLimit headers)."""
        limit, period = self.limits.get(group, (1000, 1.0))
        bucket = self._buckets.setdefault((group, major), _Bucket())
        if now >= bucket.window_start + period:
            bucket.window_start, bucket.count = now, 0
            bucket.window_end_wall = time.time() + period
        allowed = bucket.count < limit
        if allowed and take:
            bucket.count += 1
        reset_after = max(bucket.window_start + period - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(limit - bucket.count, 0)),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{bucket.window_end_wall:.3f}",
            "X-RateLimit-Bucket": f"bucket-{group}",
        }
        return allowed, headers

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        received = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        method = handler.command
        split = urlsplit(handler.path)
        path, query = split.path, parse_qs(split.query)
        group, major, parts = self._route(method, path)
        reason = handler.headers.get("X-Audit-Log-Reason")
        record = Served(received=received, method=method, path=path, group=group, major=major,
                        audit_reason=unquote(reason) if reason is not None else None,
                        authorization=handler.headers.get("Authorization"))
        early: tuple[int, Any] | None = None
        headers: dict[str, str] = {}
        with self._lock:
            self.log.append(record)
            fault = None if self._down else self._next_fault(method, path)
            if not self._down and not (fault is not None and fault.drop):
                # Limits are counted on receipt, as Discord's edge does: a request the client
                # gave up on (timeout) still counts.
                early, headers = self._admit(record, fault)
        if self._down or (fault is not None and fault.drop):
            handler.close_connection = True
            return
        delay = (fault.delay if fault is not None else 0.0) or self._slow_all
        if delay:
            time.sleep(delay)
        if early is not None:
            status, body = early
        else:
            with self._lock:
                status, body = self._endpoint(group, method, parts, query, raw)
        self._send(handler, record, status, body, headers)

    def _too_many(self, record: Served, retry_after: float, headers: dict[str, str], *,
                  is_global: bool, scripted: bool, where: str = "both"
                  ) -> tuple[tuple[int, Any], dict[str, str]]:
        record.scripted, record.retry_after, record.is_global = scripted, retry_after, is_global
        body: dict[str, Any] = {"message": "You are being rate limited.", "global": is_global}
        if where in ("body", "both"):
            body["retry_after"] = retry_after
        if where in ("header", "both"):
            headers["Retry-After"] = str(max(1, round(retry_after + 0.4999)))
        if is_global:
            headers["X-RateLimit-Global"] = "true"
            headers["X-RateLimit-Scope"] = "global"
        else:
            headers["X-RateLimit-Scope"] = "user"
        return (429, body), headers

    def _admit(self, record: Served, fault: Fault | None
               ) -> tuple[tuple[int, Any] | None, dict[str, str]]:
        """Limits, token and scripted failures: (an answer instead of the endpoint's, headers)."""
        now = record.received
        group, major = record.group, record.major
        # Global limit: requests received in the last second, this one included.
        recent = sum(1 for s in self.log if s.received <= now and now - s.received < 1.0)
        if recent > self.global_limit:
            return self._too_many(record, 1.0, {}, is_global=True, scripted=False)
        if group != "webhook" and record.authorization != f"Bot {self.token}":
            return (401, {"message": "401: Unauthorized", "code": 0}), {}
        if fault is not None and fault.status is not None:
            record.scripted = True
            _, headers = self._bucket_headers(group, major, now, take=False)
            if fault.status == 429:
                retry_after = fault.retry_after if fault.retry_after is not None else 1.0
                headers.update({"X-RateLimit-Remaining": "0",
                                "X-RateLimit-Reset-After": f"{retry_after:.3f}"})
                return self._too_many(record, retry_after, headers, is_global=fault.is_global,
                                      scripted=True, where=fault.retry_after_in)
            return (fault.status, {"message": fault.message, "code": fault.code}), headers
        if self._fail_all is not None:
            record.scripted = True
            return (self._fail_all, {"message": "Service Unavailable", "code": 0}), {}
        allowed, headers = self._bucket_headers(group, major, now, take=True)
        if not allowed:
            retry_after = float(headers["X-RateLimit-Reset-After"])
            return self._too_many(record, retry_after, headers, is_global=False, scripted=False)
        return None, headers

    def _endpoint(self, group: str, method: str, parts: list[str],
                  query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        if group == "webhook":
            return self._webhook(method, parts, query, raw)
        if group == "unknown" or not parts[1].isdigit() or int(parts[1]) != self.guild_id:
            return 404, {"message": "Unknown Guild", "code": UNKNOWN_GUILD}
        if group == "members.list" and method == "GET":
            limit = int((query.get("limit") or ["1"])[0])
            after = int((query.get("after") or ["0"])[0])
            ids = sorted(u for u in self.members if u > after)[: max(1, min(limit, 1000))]
            return 200, [self._member_json(u) for u in ids]
        user_id = int(parts[3]) if parts[3].isdigit() else -1
        if user_id not in self.members:
            return 404, {"message": "Unknown Member", "code": UNKNOWN_MEMBER}
        if group == "member.get" and method == "GET":
            return 200, self._member_json(user_id)
        if group == "member.roles" and method in ("PUT", "DELETE"):
            role_id = int(parts[5]) if parts[5].isdigit() else -1
            if self.guild_roles and role_id not in self.guild_roles:
                return 404, {"message": "Unknown Role", "code": UNKNOWN_ROLE}
            if role_id in self.unmanageable:
                return 403, {"message": "Missing Permissions", "code": MISSING_PERMISSIONS}
            if method == "PUT":
                self.members[user_id].add(role_id)
            else:
                self.members[user_id].discard(role_id)
            return 204, None
        return 405, {"message": "405: Method Not Allowed", "code": 0}

    def _member_json(self, user_id: int) -> dict[str, Any]:
        return {"user": {"id": str(user_id), "username": f"user{user_id}"},
                "roles": [str(r) for r in sorted(self.members[user_id])],
                "joined_at": "2026-01-01T00:00:00+00:00"}

    def _webhook(self, method: str, parts: list[str], query: dict[str, list[str]],
                 raw: bytes) -> tuple[int, Any]:
        hook = next((h for h in self.webhooks.values() if str(h.id) == parts[1]), None)
        if hook is None or hook.deleted:
            return 404, {"message": "Unknown Webhook", "code": UNKNOWN_WEBHOOK}
        if parts[2] != hook.token:
            return 401, {"message": "Invalid Webhook Token", "code": INVALID_WEBHOOK_TOKEN}
        if method != "POST":
            return 405, {"message": "405: Method Not Allowed", "code": 0}
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"message": "400: Bad Request", "code": 50109}
        content = payload.get("content") or ""
        if not content:
            return 400, {"message": "Cannot send an empty message", "code": EMPTY_MESSAGE}
        if len(content) > CONTENT_MAX:
            return 400, {"message": "Invalid Form Body", "code": INVALID_FORM_BODY}
        allowed = payload.get("allowed_mentions")
        hook.messages.append(WebhookMessage(webhook=hook.name, content=content,
                                            allowed_mentions=allowed,
                                            username=payload.get("username"),
                                            pings=pings(content, allowed)))
        if (query.get("wait") or ["false"])[0] == "true":
            return 200, {"id": str(len(hook.messages)), "content": content}
        return 204, None

    def _send(self, handler: BaseHTTPRequestHandler, record: Served, status: int, body: Any,
              headers: dict[str, str]) -> None:
        data = b"" if body is None or status == 204 else json.dumps(body).encode()
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if data:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if data:
                handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:  # the client gave up (timeout) before the answer
            handler.close_connection = True
        with self._lock:
            record.status, record.sent = status, time.monotonic()
