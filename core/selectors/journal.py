"""Journal entries in words: a translated sentence per action, filled from the entry itself.

Every action passed to log_event has a template here (a test walks the code to keep it so);
an action without one reads as its code and the people involved. `%(actor)s` and
`%(target)s` stand for the people, whom the admin renders as links; every other placeholder
is a key of the entry's data or a value derived from it below. Nothing here queries the
database: the journal lists stay at a fixed number of queries whatever their length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from core.models import LogEntry

MISSING = "—"
LIST_MAX = 10  # items of a list value shown before "..."

JOURNAL_DESCRIPTIONS: dict[str, Promise] = {
    # Accounts
    "user.register": gettext_lazy("%(actor)s registered with an invite from %(target)s"),
    "user.login": gettext_lazy("%(actor)s logged in"),
    "user.logout": gettext_lazy("%(actor)s logged out"),
    "user.login_failed": gettext_lazy("Failed login as %(username)s"),
    "user.login_locked": gettext_lazy("Login as %(username)s refused: locked out"),
    "user.change_password": gettext_lazy("%(actor)s changed their password"),
    "user.end_sessions": gettext_lazy("%(actor)s ended every session of %(target)s"),
    "user.bootstrap_admin": gettext_lazy("%(target)s was created as the first administrator"),
    "user.update": gettext_lazy("%(actor)s edited the profile of %(target)s (%(fields)s)"),
    "user.set_password": gettext_lazy("%(actor)s set a new password for %(target)s"),
    "user.set_role": gettext_lazy("%(actor)s changed the role of %(target)s from %(from)s "
                                  "to %(to)s"),
    "user.delete": gettext_lazy("%(actor)s deleted the account %(username)s"),
    "user.resync_discord": gettext_lazy("%(actor)s queued a Discord role sync for %(target)s"),
    "user.ban": gettext_lazy("%(actor)s banned %(target)s %(until)s: %(reason)s"),
    "user.unban": gettext_lazy("%(actor)s lifted the ban of %(target)s"),
    "user.ban_expired": gettext_lazy("The ban of %(target)s ended"),
    "users.branch_ban": gettext_lazy("%(actor)s banned the invite branch of %(target)s: "
                                     "%(banned)s banned, %(skipped)s skipped, "
                                     "%(already_banned)s already banned"),
    "staff.2fa_enrol": gettext_lazy("%(actor)s set up two-factor login"),
    "staff.2fa_backup_code_used": gettext_lazy("%(actor)s used a backup code "
                                               "(%(backup_codes_left)s left)"),
    "staff.2fa_reset": gettext_lazy("%(actor)s reset the two-factor login of %(target)s"),
    "ratelimit.exceeded": gettext_lazy("Too many requests for %(scope)s (limit %(limit)s)"),
    "lockout.lift": gettext_lazy("%(actor)s lifted the login lock-out of %(username)s "
                                 "(%(attempts)s failed attempts)"),
    # Invites
    "invite.create": gettext_lazy("%(actor)s created invite #%(invite_id)s"),
    "invite.revoke": gettext_lazy("%(actor)s revoked invite #%(invite_id)s"),
    "invites.branch_disable": gettext_lazy("%(actor)s disabled the invites of the branch of "
                                           "%(target)s: %(changed)s changed, %(skipped)s "
                                           "skipped"),
    # Keys and subscriptions
    "keys.generate": gettext_lazy("%(actor)s generated %(count)s keys for %(product)s "
                                  "(%(duration)s each)"),
    "keys.generate_failed": gettext_lazy("Generating keys stopped after %(done)s of %(count)s: "
                                         "%(error)s"),
    "keys.revoke": gettext_lazy("%(actor)s revoked %(revoked)s of %(requested)s keys"),
    "keys.export": gettext_lazy("%(actor)s exported keys %(codes)s (%(scope)s)"),
    "key.redeem": gettext_lazy("%(actor)s redeemed a key for %(product)s (subscription until "
                               "%(expires_at)s)"),
    "key.redeem_failed": gettext_lazy("%(actor)s could not redeem a key (%(reason)s)"),
    "subscription.adjust": gettext_lazy("%(actor)s changed the %(product)s subscription of "
                                        "%(target)s by %(delta)s, now until "
                                        "%(new_expires_at)s: %(reason)s"),
    "subscription.reset_hwid": gettext_lazy("%(actor)s reset the machine binding of "
                                            "%(target)s for %(product)s"),
    "subscription.self_reset_hwid": gettext_lazy("%(actor)s reset their own machine binding "
                                                 "for %(product)s"),
    "license.check_ok": gettext_lazy("%(actor)s passed the licence check for %(product)s "
                                     "(%(mode)s)"),
    "license.check_failed": gettext_lazy("Licence check for %(product)s refused (%(mode)s): "
                                         "%(reason)s"),
    "product.create": gettext_lazy("%(actor)s created the product %(slug)s"),
    "product.update": gettext_lazy("%(actor)s edited the product %(slug)s (%(fields)s)"),
    "product.delete": gettext_lazy("%(actor)s deleted the product %(slug)s"),
    # Loader
    "loader.release_create": gettext_lazy("%(actor)s uploaded loader %(version)s"),
    "loader.release_publish": gettext_lazy("%(actor)s published loader %(version)s"),
    "loader.release_withdraw": gettext_lazy("%(actor)s withdrew loader %(version)s"),
    "loader.download": gettext_lazy("%(actor)s downloaded loader %(version)s"),
    "loader.file_missing": gettext_lazy("The file of loader %(version)s is missing"),
    # Roles
    "roles.sync": gettext_lazy("Roles read from config.yaml: created %(created)s; "
                               "updated %(updated)s"),
    "role.create": gettext_lazy("%(actor)s created the role %(role)s"),
    "role.update": gettext_lazy("%(actor)s edited the role %(role)s (%(fields)s)"),
    # Discord
    "discord.code_issued": gettext_lazy("Discord account %(discord_username)s asked for a "
                                        "link code"),
    "discord.link": gettext_lazy("%(actor)s linked Discord account %(discord_id)s"),
    "discord.link_failed": gettext_lazy("%(actor)s could not link a Discord account "
                                        "(%(reason)s)"),
    "discord.unlink": gettext_lazy("%(actor)s unlinked Discord account %(discord_id)s"),
    "discord.resync": gettext_lazy("%(actor)s asked for their Discord roles again"),
    "discord.member_join": gettext_lazy("%(target)s joined the Discord server"),
    "discord.unknown_role": gettext_lazy("Discord does not know role %(role_id)s"),
    "discord.role_sync_forbidden": gettext_lazy("Discord refused the role sync (HTTP "
                                                "%(status)s); role sync is paused"),
    "discord.member_list_forbidden": gettext_lazy("Discord refused to list the server's "
                                                  "members (HTTP %(status)s)"),
    # System
    "webhook.disabled": gettext_lazy("The %(journal)s journal webhook was turned off (HTTP "
                                     "%(status)s)"),
    "api.unhandled": gettext_lazy("Unhandled %(error)s on %(method)s %(path)s (request "
                                  "%(request_id)s)"),
    "request.unhandled": gettext_lazy("Unhandled %(error)s on %(method)s %(path)s (request "
                                      "%(request_id)s)"),
    "task.failed": gettext_lazy("Background task %(place)s failed: %(error)s"),
    "database.unavailable": gettext_lazy(
        "Database connection lost (%(error)s) on %(method)s %(path)s: answered 503, journaled "
        "once per outage (request %(request_id)s)"),
    "cache.unavailable": gettext_lazy(
        "Redis unreachable (%(error)s): the cache and throttles run per process until it is "
        "back"),
    "admin.export": gettext_lazy("%(actor)s exported %(model)s as CSV (%(scope)s)"),
}


# When the actor acted on themselves ("member ended every session of member" reads oddly).
JOURNAL_SELF_DESCRIPTIONS: dict[str, Promise] = {
    "user.end_sessions": gettext_lazy("%(actor)s logged out everywhere else"),
}


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return MISSING
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds % 86400 == 0:
        days = seconds // 86400
        return sign + ngettext("%(n)d day", "%(n)d days", days) % {"n": days}
    hours = round(seconds / 3600)
    return sign + ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}


def _moment(value: Any) -> str:
    """An ISO timestamp from the data as the admin shows dates; anything else as text."""
    if not isinstance(value, str):
        return _text(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return formats.date_format(moment, "DATETIME_FORMAT")


def _text(value: Any) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dict):
        value = sorted(value)
    if isinstance(value, list | tuple):
        items = [str(item) for item in value[:LIST_MAX]]
        return (", ".join(items) + ("..." if len(value) > LIST_MAX else "")) or MISSING
    return str(value)


def _ban_until(data: Mapping[str, Any]) -> dict[str, str]:
    if data.get("ends_at"):
        return {"until": _("until %(date)s") % {"date": _moment(data["ends_at"])}}
    return {"until": _("permanently")}


def _changed_fields(key: str) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    return lambda data: {"fields": _text(data.get(key))}


# Placeholders that are not a data key as it is.
_DERIVED: dict[str, Callable[[Mapping[str, Any]], dict[str, str]]] = {
    "user.ban": _ban_until,
    "user.update": _changed_fields("changes"),
    "role.update": _changed_fields("after"),
    "product.update": _changed_fields("changed"),
    "keys.generate": lambda data: {"duration": _duration(data.get("duration_seconds"))},
    "keys.export": lambda data: {
        "codes": _("with codes") if data.get("with_codes") else _("without codes")},
    "subscription.adjust": lambda data: {"delta": _duration(data.get("delta_seconds"))},
}


class JournalValues(dict[str, str]):
    """A placeholder an older entry's data lacks reads as a dash instead of failing."""

    def __missing__(self, key: str) -> str:
        return MISSING


@dataclass(frozen=True)
class EntryDescription:
    """A translated sentence: `template` with `values` (plain text) filled in; `%(actor)s`
    and `%(target)s` are left to the caller (a link in the admin, a name elsewhere)."""

    template: str
    values: Mapping[str, str]
    known: bool  # False: the action has no sentence and reads as its code


def _fallback(entry: LogEntry) -> str:
    if entry.actor_name and entry.target_name:
        return _("%(action)s by %(actor)s on %(target)s")
    if entry.actor_name:
        return _("%(action)s by %(actor)s")
    if entry.target_name:
        return _("%(action)s on %(target)s")
    return "%(action)s"


def journal_entry_description(*, entry: LogEntry) -> EntryDescription:
    """The entry as a sentence; an action without one reads as its code and its people."""
    template = JOURNAL_DESCRIPTIONS.get(entry.action)
    if entry.actor_id is not None and entry.actor_id == entry.target_id:
        template = JOURNAL_SELF_DESCRIPTIONS.get(entry.action, template)
    if template is None:
        return EntryDescription(template=_fallback(entry),
                                values=JournalValues(action=entry.action), known=False)
    data = entry.data if isinstance(entry.data, dict) else {}
    values = JournalValues({
        key: _moment(value) if key.endswith("_at") else _text(value)
        for key, value in data.items()
    })
    derive = _DERIVED.get(entry.action)
    if derive is not None:
        values.update(derive(data))
    return EntryDescription(template=str(template), values=values, known=True)


def journal_person(name: str) -> str:
    """How an actor or target without an account name reads (system jobs, old entries)."""
    return name or _("someone")


def journal_entry_text(*, entry: LogEntry) -> str:
    """The sentence as plain text."""
    description = journal_entry_description(entry=entry)
    values = JournalValues(description.values)
    values.update(actor=journal_person(entry.actor_name),
                  target=journal_person(entry.target_name))
    return description.template % values
