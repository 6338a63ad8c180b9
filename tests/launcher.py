"""Run a command (the test suite) with a database and a cache.

DATABASE_URL / REDIS_URL from the environment win. Otherwise throwaway PostgreSQL and Redis are
started from local binaries when they exist, on free loopback ports, and removed afterwards.
Otherwise the suite runs on SQLite and the local-memory cache, and PostgreSQL-only tests skip.

    python -m tests.launcher -- pytest -q
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    # PostgreSQL refuses to run as root; borrow the postgres account when we are root.
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield None
            return
        run_as = "postgres"
    tmp = tempfile.mkdtemp(prefix="zspb-pg-")
    if run_as:
        shutil.chown(tmp, run_as)
    data, port = os.path.join(tmp, "data"), _free_port()
    try:
        subprocess.run(_as_user([initdb, "-D", data, "-U", "postgres", "-A", "trust"], run_as),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_user([pg_ctl, "-D", data, "-o", opts, "-l",
                                 os.path.join(tmp, "log"), "-w", "start"], run_as),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        print(f"launcher: throwaway PostgreSQL on 127.0.0.1:{port}", file=sys.stderr)
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_user([pg_ctl, "-D", data, "-m", "immediate", "stop"], run_as),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str | None]:
    server = shutil.which("redis-server")
    if not server:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(port)
        print(f"launcher: throwaway Redis on 127.0.0.1:{port}", file=sys.stderr)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m tests.launcher -- COMMAND...", file=sys.stderr)
        return 2
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            url = stack.enter_context(throwaway_postgres())
            if url:
                env["DATABASE_URL"] = url
            else:
                print("launcher: no PostgreSQL found; running on SQLite", file=sys.stderr)
        if not env.get("REDIS_URL"):
            url = stack.enter_context(throwaway_redis())
            if url:
                env["REDIS_URL"] = url
        env.setdefault("ZSPB_VAR_DIR", stack.enter_context(tempfile.TemporaryDirectory()))
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
