from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.errors import ZspbError
from core.models import Invite
from core.services.invites import invite_create
from core.services.users import admin_bootstrap


class Command(BaseCommand):
    help = (
        "Create the first administrator (ZSPB_ADMIN_USERNAME / ZSPB_ADMIN_PASSWORD, or a "
        "generated password printed once) and print an invite link for the first members."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("ZSPB_ADMIN_USERNAME", "admin")
        try:
            admin, generated = admin_bootstrap(
                username=username, password=os.environ.get("ZSPB_ADMIN_PASSWORD")
            )
        except ZspbError as exc:
            raise CommandError(exc.message) from None
        if generated:
            self.stdout.write(self.style.WARNING(
                f"First administrator: {admin.username} / {generated}  (shown once; change it)"
            ))
        else:
            self.stdout.write(f"Administrator: {admin.username} (exists)")
        invite = (
            Invite.objects.filter(created_by=admin, status=Invite.Status.ACTIVE).order_by(
                "-expires_at").first()
        )
        if invite is None or not invite.is_usable():
            invite = invite_create(creator=admin)
        self.stdout.write(f"Invite link: {settings.SITE_URL}/register?invite={invite.code}")
        self.stdout.write(f"Staff admin: {settings.SITE_URL}/admin/")
