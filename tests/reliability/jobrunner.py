"""Run one background job function in a process of its own, as a django-q2 worker does, so a
test can SIGKILL it mid-way and run it again.

    python -m tests.reliability.jobrunner core.tasks.rolesync_drain [int args...]

Test-only knobs, from the environment (JSON objects), compress time the way a test needs:
- ZSPB_TEST_SET: {"module.NAME": value} sets module constants first (a timedelta constant
  takes seconds), e.g. a short role-sync lease, small key-generation chunks;
- ZSPB_TEST_SLOW: {"module.function": seconds} makes each call of that function wait first,
  so a job is caught mid-way at a known point (inside a chunk's transaction, say).
Discord must be the loopback stand-in: the runner refuses any other DISCORD_API_BASE.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit


def _split(dotted: str) -> tuple[Any, str]:
    module, _, name = dotted.rpartition(".")
    return importlib.import_module(module), name


def _slowed(func: Any, seconds: float) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return func(*args, **kwargs)
    return wrapper


def main(argv: list[str]) -> int:
    base = os.environ.get("DISCORD_API_BASE", "")
    if base and urlsplit(base).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing DISCORD_API_BASE={base}: tests talk to the stand-in only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    for dotted, value in json.loads(os.environ.get("ZSPB_TEST_SET") or "{}").items():
        module, name = _split(dotted)
        if isinstance(getattr(module, name), timedelta):
            value = timedelta(seconds=value)
        setattr(module, name, value)
    for dotted, seconds in json.loads(os.environ.get("ZSPB_TEST_SLOW") or "{}").items():
        module, name = _split(dotted)
        setattr(module, name, _slowed(getattr(module, name), float(seconds)))
    module, name = _split(argv[0])
    result = getattr(module, name)(*(int(a) for a in argv[1:]))
    print(f"result: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
