from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from config.behaviour import CAPABILITIES, RoleSpec
from core.errors import Conflict, InvalidInput, PermissionDenied, RankViolation
from core.models import Role, User
from core.services.access import ensure_capability
from core.services.logs import Category, log_event
from core.services.rolesync import role_sync_request_members


@dataclass
class RoleSyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _fields(spec: RoleSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "rank": spec.rank,
        "invite_quota": spec.invite_quota,
        "discord_role_id": spec.discord_role_id,
        "staff": spec.staff,
        "permissions": sorted(spec.permissions),
    }


def roles_sync_from_config(*, overwrite: bool = False) -> RoleSyncReport:
    """Create the roles of config.yaml that are missing (matched by key).

    Existing roles belong to the admin's role editor and are left alone unless `overwrite`.
    Idempotent: a second run changes nothing.
    """
    report = RoleSyncReport()
    with transaction.atomic():
        existing = {role.key: role for role in Role.objects.select_for_update()}
        specs = sorted(settings.ZSPB.roles, key=lambda s: s.rank)
        if overwrite:
            # Ranks are unique: park the overwritten ones out of the way before reassigning.
            # Roles that exist only in the database keep their rank; a clash is reported.
            configured = {s.key for s in specs}
            db_only_ranks = {r.rank: r.key for r in existing.values() if r.key not in configured}
            for spec in specs:
                if spec.rank in db_only_ranks:
                    raise InvalidInput(
                        _("config.yaml gives %(key)s rank %(rank)s, which role "
                          "%(holder)s (not in config.yaml) holds.")
                        % {"key": repr(spec.key), "rank": spec.rank,
                           "holder": repr(db_only_ranks[spec.rank])}
                    )
            to_update = [existing[s.key] for s in specs if s.key in existing]
            top = max([r.rank for r in existing.values()] + [s.rank for s in specs], default=0)
            for offset, role in enumerate(to_update, start=1):
                Role.objects.filter(pk=role.pk).update(rank=top + offset)
        for spec in specs:
            wanted = _fields(spec)
            current = existing.get(spec.key)
            if current is None:
                clash = Role.objects.filter(rank=spec.rank).first() or Role.objects.filter(
                    name=spec.name).first()
                if clash is not None:
                    # An admin reused this rank or name; creating the role would fail the
                    # unique constraint, and the admin's edits win.
                    report.skipped[spec.key] = f"rank or name taken by role {clash.key!r}"
                    continue
                Role.objects.create(key=spec.key, **wanted)
                report.created.append(spec.key)
            elif overwrite:
                changed = any(getattr(current, name) != value for name, value in wanted.items())
                Role.objects.filter(pk=current.pk).update(**wanted)
                (report.updated if changed else report.unchanged).append(spec.key)
            else:
                report.unchanged.append(spec.key)
        if report.created or report.updated:
            log_event(category=Category.MODERATION, action="roles.sync",
                      data={"created": report.created, "updated": report.updated})
    return report


# The admin's role editor. Only manage_roles may edit, nobody a role at or above their own
# rank, and every change is journaled with its before/after values.

ROLE_FIELDS = ("name", "rank", "discord_role_id", "invite_quota", "staff", "permissions")


def _validate_role_fields(*, actor: User, fields: dict[str, Any],
                          current: Role | None = None) -> dict[str, Any]:
    unknown = set(fields) - set(ROLE_FIELDS)
    if unknown:
        raise InvalidInput(_("Unknown role fields: %(fields)s.")
                           % {"fields": ", ".join(sorted(unknown))})
    if "permissions" in fields:
        perms = sorted(set(fields["permissions"] or []))
        if not set(perms) <= CAPABILITIES:
            raise InvalidInput(_("Unknown permissions; allowed: %(allowed)s.")
                               % {"allowed": ", ".join(sorted(CAPABILITIES))},
                               fields={"permissions": "invalid"})
        # Nobody hands out a power they do not hold themselves (keeping one is fine).
        held = set(current.permissions or []) if current is not None else set()
        missing = [p for p in perms if p not in held and not actor.has_capability(p)]
        if missing:
            raise PermissionDenied(_("You cannot grant permissions you do not hold: "
                                     "%(missing)s.") % {"missing": ", ".join(missing)})
        fields = {**fields, "permissions": perms}
    if "rank" in fields:
        rank = fields["rank"]
        if not isinstance(rank, int) or rank < 1:
            raise InvalidInput(_("The rank must be a positive whole number."),
                               fields={"rank": "invalid"})
        if rank >= actor.rank:
            raise RankViolation(_("A role must stay ranked below your own."))
    if "name" in fields and not str(fields["name"]).strip():
        raise InvalidInput(_("A role needs a name."), fields={"name": "required"})
    return fields


def _clash(*, fields: dict[str, Any], exclude: int | None) -> None:
    others = Role.objects.exclude(pk=exclude) if exclude else Role.objects.all()
    if "rank" in fields and others.filter(rank=fields["rank"]).exists():
        raise Conflict(_("Another role has this rank."), fields={"rank": "taken"})
    if "name" in fields and others.filter(name=fields["name"]).exists():
        raise Conflict(_("Another role has this name."), fields={"name": "taken"})


def role_create(*, actor: User, key: str, fields: dict[str, Any]) -> Role:
    ensure_capability(actor, "manage_roles")
    fields = _validate_role_fields(actor=actor, fields=fields)
    if "rank" not in fields or "name" not in fields:
        raise InvalidInput(_("A new role needs a name and a rank."))
    if not key or not key.replace("_", "").isalnum() or len(key) > 32:
        raise InvalidInput(_("The key is letters, digits and underscores (at most 32)."),
                           fields={"key": "invalid"})
    with transaction.atomic():
        _clash(fields=fields, exclude=None)
        if Role.objects.filter(key=key).exists():
            raise Conflict(_("Another role has this key."), fields={"key": "taken"})
        role = Role.objects.create(key=key, **fields)
        log_event(category=Category.MODERATION, action="role.create", actor=actor,
                  data={"role": key, "after": {f: getattr(role, f) for f in ROLE_FIELDS}})
    return role


def role_update(*, actor: User, role: Role, changes: dict[str, Any]) -> Role:
    """Edit a role below the actor's rank; members' staff flag and Discord roles follow."""
    ensure_capability(actor, "manage_roles")
    with transaction.atomic():
        current = Role.objects.select_for_update().get(pk=role.pk)
        if current.rank >= actor.rank:
            raise RankViolation(_("You can only edit roles ranked below your own."))
        changes = _validate_role_fields(actor=actor, fields=changes, current=current)
        diff = {f: v for f, v in changes.items() if getattr(current, f) != v}
        if not diff:
            return current
        _clash(fields=diff, exclude=current.pk)
        before = {f: getattr(current, f) for f in diff}
        for name, value in diff.items():
            setattr(current, name, value)
        current.save(update_fields=[*diff, "updated_at"])
        if "staff" in diff:
            # Superusers keep their access whatever their role says.
            current.members.filter(is_superuser=False).update(is_staff=current.staff)
        queued = 0
        if "discord_role_id" in diff:
            queued = role_sync_request_members(users=current.members.all(), reason="role_edit")
        log_event(category=Category.MODERATION, action="role.update", actor=actor,
                  data={"role": current.key, "before": before, "after": diff,
                        "syncs_queued": queued})
    return current
