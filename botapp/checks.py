"""Start-up checks: can the site's role sync, which edits roles with this bot's token, work?

Misplaced roles are the usual set-up mistake, and Discord answers them with 403 on every
edit; saying once, at start, which roles cannot be managed and why is far kinder than a log
full of refusals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class StartupReport:
    problems: list[str] = field(default_factory=list)
    # role id -> why the bot cannot add or remove it
    unmanageable: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unmanageable

    def log(self) -> None:
        for problem in self.problems:
            logger.error("start-up check: %s", problem)
        for role_id, why in sorted(self.unmanageable.items()):
            logger.error("start-up check: cannot manage role %s: %s", role_id, why)
        if self.ok:
            logger.info("start-up check: intents, permissions and role hierarchy are fine")


def check_intents(intents: Any) -> list[str]:
    if not intents.members:
        return ["the GUILD_MEMBERS intent is off: member joins and role edits will not arrive "
                "(enable Server Members Intent in the developer portal)"]
    return []


def check_guild(guild: Any, managed: Iterable[int]) -> StartupReport:
    """Permission and hierarchy of the bot's member in `guild` against the managed role ids."""
    report = StartupReport()
    me = guild.me
    if not me.guild_permissions.manage_roles:
        report.problems.append(
            "the bot lacks the Manage Roles permission: it cannot add or remove any role"
        )
    top = me.top_role
    for role_id in sorted(set(managed)):
        role = guild.get_role(role_id)
        if role is None:
            report.unmanageable[role_id] = ("no such role in this server (fix the role id in "
                                            "config.yaml or the admin)")
        elif role.managed:
            report.unmanageable[role_id] = (f"'{role.name}' belongs to an integration or "
                                            "booster tier; nobody can assign it")
        elif role.is_default():
            report.unmanageable[role_id] = "@everyone cannot be assigned"
        elif not role.is_assignable():
            report.unmanageable[role_id] = (
                f"'{role.name}' (position {role.position}) is not below the bot's top role "
                f"'{top.name}' (position {top.position}): drag the bot's role above it"
            )
    return report
