from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from config.behaviour import RoleSpec
from core.errors import InvalidInput
from core.models import Role
from core.services.logs import Category, log_event


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
                        f"config.yaml gives {spec.key!r} rank {spec.rank}, which role "
                        f"{db_only_ranks[spec.rank]!r} (not in config.yaml) holds."
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
