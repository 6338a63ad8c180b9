from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.workers import WS_IMPLEMENTATION, WS_MAX_SIZE, WS_PER_MESSAGE_DEFLATE
from core.checks import discord_notice


class Command(BaseCommand):
    help = ("Serve the site (HTTP and WebSocket, uvicorn) on 127.0.0.1:PORT and run the "
            "django-q2 worker; Ctrl-C stops both.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, **options: Any) -> None:
        notice = discord_notice()
        if notice:
            self.stdout.write(self.style.WARNING(notice))
        children = [
            subprocess.Popen([sys.executable, "manage.py", "worker"]),
            # HTTP and the members' WebSocket on one port (config/asgi.py); in DEBUG whitenoise
            # serves the static files from the finders.
            subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application",
                              "--host", "127.0.0.1", "--port", str(options["port"]),
                              "--lifespan", "off", "--ws", WS_IMPLEMENTATION,
                              "--ws-max-size", str(WS_MAX_SIZE),
                              "--ws-per-message-deflate", str(WS_PER_MESSAGE_DEFLATE).lower(),
                              "--timeout-graceful-shutdown", "5"]),
        ]
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        self.stdout.write("stopped")
