"""Converging a guild member's managed roles to what the site wants.

The site says which roles it manages and which of them a member should hold; the bot adds the
missing ones and removes the unwanted ones, one role per request (a whole-list edit would race
with moderators), and never touches a role the site does not manage.

Each role the bot adds or removes comes back as a member-update event. Those echoes are
recognised by a short-lived record of what the bot just did, so the bot does not react to its
own edits; anything else (a moderator's manual edit) is reverted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import nextcord

from botapp.api_client import BotApiClient, BotApiError, MemberRoles

logger = logging.getLogger(__name__)

Op = Literal["add", "remove"]
# Long enough for the gateway echo of a role edit (usually well under a second, more under
# load); short enough that a stale entry cannot hide a later manual edit for long.
ECHO_TTL_SECONDS = 60.0
# The managed set changes only when staff edit roles or products; reusing it briefly spares an
# API call for role edits that cannot concern the site (reaction roles, other bots).
MANAGED_TTL_SECONDS = 300.0


class RecentRoleEdits:
    """(member, role, op) triples the bot applied recently, each forgotten after `ttl` seconds.

    Per process on purpose: each shard sees the echoes of its own edits.
    """

    def __init__(self, ttl: float = ECHO_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._until: dict[tuple[int, int, Op], float] = {}

    def __len__(self) -> int:
        self._prune()
        return len(self._until)

    def _prune(self) -> None:
        now = self._clock()
        for key in [key for key, until in self._until.items() if until <= now]:
            del self._until[key]

    def record(self, member_id: int, role_id: int, op: Op) -> None:
        self._until[(member_id, role_id, op)] = self._clock() + self._ttl

    def forget(self, member_id: int, role_id: int, op: Op) -> None:
        self._until.pop((member_id, role_id, op), None)

    def consume_own(self, member_id: int, added: Iterable[int], removed: Iterable[int]) -> bool:
        """True (and forget them) when the whole diff is edits the bot just made itself."""
        self._prune()
        diff: set[tuple[int, int, Op]] = {(member_id, role_id, "add") for role_id in added}
        diff |= {(member_id, role_id, "remove") for role_id in removed}
        if not diff or not diff <= self._until.keys():
            return False
        for key in diff:
            del self._until[key]
        return True


@dataclass(frozen=True)
class Convergence:
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    # Wanted or unwanted roles the bot cannot edit (missing, above its own top role, integration).
    skipped: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()

    @property
    def drift(self) -> bool:
        """Whether the member's roles differed from the wanted ones."""
        return bool(self.added or self.removed or self.skipped or self.failed)


def role_ids(roles: Iterable[Any]) -> set[int]:
    return {int(role.id) for role in roles}


class RoleConverger:
    def __init__(self, api: BotApiClient, recent: RecentRoleEdits, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.recent = recent
        self._clock = clock
        self._managed: frozenset[int] | None = None
        self._managed_until = 0.0

    def remember(self, roles: MemberRoles) -> None:
        self._managed = roles.managed
        self._managed_until = self._clock() + MANAGED_TTL_SECONDS

    def concerns_site(self, changed: set[int]) -> bool:
        """False only when a recent managed set shows the change touched no managed role."""
        if self._managed is None or self._clock() >= self._managed_until:
            return True
        return bool(changed & self._managed)

    async def wanted(self, member_id: int) -> MemberRoles | None:
        try:
            roles = await self.api.member_roles(member_id)
        except BotApiError as exc:
            # The site's periodic full reconcile repairs what is missed here.
            logger.warning("cannot converge member %s: %s", member_id, exc)
            return None
        self.remember(roles)
        return roles

    async def converge(self, member: Any, *, reason: str) -> Convergence | None:
        """Add missing wanted roles and remove unwanted managed ones; None if the site is down."""
        roles = await self.wanted(int(member.id))
        if roles is None:
            return None
        current = role_ids(member.roles)
        wanted = roles.wanted & roles.managed  # never more than the site manages
        to_add = sorted(wanted - current)
        to_remove = sorted((current & roles.managed) - wanted)
        added: list[int] = []
        removed: list[int] = []
        skipped: list[int] = []
        failed: list[int] = []
        plan: tuple[tuple[Op, list[int], list[int]], ...] = (
            ("add", to_add, added), ("remove", to_remove, removed))
        for op, ids, done in plan:
            for role_id in ids:
                role = member.guild.get_role(role_id)
                if role is None or not role.is_assignable():
                    skipped.append(role_id)
                    continue
                if await self._edit(member, role, op, reason=reason):
                    done.append(role_id)
                else:
                    failed.append(role_id)
        if skipped:
            logger.warning("member %s: cannot edit roles %s (missing, or not below the bot's "
                           "top role); see the start-up check", member.id, skipped)
        return Convergence(tuple(added), tuple(removed), tuple(skipped), tuple(failed))

    async def _edit(self, member: Any, role: Any, op: Op, *, reason: str) -> bool:
        # Recorded before the request: the gateway echo can arrive before the HTTP answer.
        self.recent.record(int(member.id), int(role.id), op)
        try:
            if op == "add":
                await member.add_roles(role, reason=reason, atomic=True)
            else:
                await member.remove_roles(role, reason=reason, atomic=True)
        except nextcord.HTTPException as exc:
            self.recent.forget(int(member.id), int(role.id), op)
            logger.error("member %s: could not %s role %s: %s", member.id, op, role.id, exc)
            return False
        logger.info("member %s: %s role %s (%s)", member.id,
                    "added" if op == "add" else "removed", role.id, reason)
        return True
