"""A production stack on loopback, from the files init.sh installs: the systemd units and the
nginx site rendered by deploy/render.py, run here without systemd.

Each unit's ExecStart=, Environment= and WorkingDirectory= are read from the rendered file and
run with nothing else in the environment, so the processes see what systemd would give them.
nginx runs the rendered site with only its `listen` moved to a free loopback port.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from core.proctable import group_running

# Not from Django's settings: bench/soak.py uses this module without configuring Django.
BASE = Path(__file__).resolve().parents[2]
WEB_STOP_TIMEOUT = 45
WORKER_STOP_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def write_env_file(path: Path, *, database_url: str, redis_url: str, site_url: str,
                   media_root: Path, log_dir: Path) -> None:
    """A server's .env as init.sh writes it (DEBUG off, generated secrets, behind nginx)."""
    host = site_url.split("://", 1)[1].split(":", 1)[0]
    values = {
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
        "DIGEST_SECRET": secrets.token_urlsafe(32), "FIELD_ENCRYPTION_KEY": _fernet_key(),
        "BOT_API_TOKEN": secrets.token_urlsafe(32),
        "LICENSE_SIGNING_KEY": secrets.token_hex(32), "BACKUP_KEY": _fernet_key(),
        "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "ALLOWED_HOSTS": f"{host},localhost", "CSRF_TRUSTED_ORIGINS": site_url,
        "SITE_URL": site_url, "HTTPS": "0", "NUM_PROXIES": "1",
        "MEDIA_ROOT": str(media_root), "LOG_DIR": str(log_dir),
        "LOADER_ACCEL_REDIRECT_PREFIX": "/protected-loader", "ZSPB_API_BASE": f"{site_url}/api",
        "Q_WORKERS": "1",
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


def render(out: Path, *, root: Path, web_bind: str, upstreams: list[str],
           web_workers: int = 1) -> None:
    values = {
        "APP_DIR": str(BASE), "VENV": str(Path(sys.executable).parent.parent),
        "USER": "zspb", "GROUP": "zspb", "ENV_FILE": str(root / "env"),
        "VAR_DIR": str(root / "var"), "MEDIA_ROOT": str(root / "var" / "media"),
        "STATIC_ROOT": str(root / "var" / "static"), "LOG_DIR": str(root / "log"),
        "BACKUP_DIR": str(root / "backups"), "BACKUP_KEEP": "3", "BACKUP_TIME": "03:30:00",
        "WEB_WORKERS": str(web_workers), "GRACEFUL_TIMEOUT": "30",
        "WEB_STOP_TIMEOUT": str(WEB_STOP_TIMEOUT),
        "WORKER_STOP_TIMEOUT": str(WORKER_STOP_TIMEOUT), "MAX_BODY": "200m",
        "ACME_ROOT": str(root / "acme"), "WEB_BIND": web_bind,
        "UPSTREAM_SERVERS": " ".join(f"server {u} fail_timeout=0;" for u in upstreams),
        "CERT_DIR": str(root / "cert"),
    }
    subprocess.run([sys.executable, str(BASE / "deploy" / "render.py"), "--out", str(out),
                    *(f"{k}={v}" for k, v in values.items())],
                   check=True, capture_output=True)


@dataclass
class Unit:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def read_unit(path: Path) -> Unit:
    """ExecStart=, Environment= and WorkingDirectory= of a rendered unit."""
    argv: list[str] = []
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    cwd = "/"
    for line in path.read_text().replace("\\\n", " ").splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "Environment":
            env.update(item.split("=", 1) for item in shlex.split(value))
        elif key == "WorkingDirectory":
            cwd = value
    assert argv, f"no ExecStart= in {path}"
    return Unit(argv=argv, env=env, cwd=cwd)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_timeout: float

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def group(self) -> list[int]:
        """The running processes of its group (exited, unreaped ones do not count)."""
        return group_running(self.pgid)

    def signal_group(self, signum: int) -> None:
        for pid in self.group():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue


def _admin(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class Stack:
    root: Path
    port: int
    database_url: str
    # An empty database the backup is restored into.
    restored_url: str
    redis_url: str
    processes: list[Process] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, *, server: str, redis_url: str, prefix: str) -> Stack:
        """A new database (and a name for the restore target), an emptied Redis database, the
        directories a server has and its .env. `server` is postgres://user@host:port."""
        name = f"{prefix}_{secrets.token_hex(5)}"
        subprocess.run(["redis-cli", "-u", redis_url, "FLUSHDB"], check=True,
                       capture_output=True)
        for sub in ("var/media", "var/static", "log", "backups"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        _admin(server, f'CREATE DATABASE "{name}"')
        stack = cls(root=root, port=free_port(), database_url=f"{server}/{name}",
                    restored_url=f"{server}/{name}_restored", redis_url=redis_url)
        write_env_file(root / "env", database_url=stack.database_url, redis_url=redis_url,
                       site_url=stack.url, media_root=root / "var" / "media",
                       log_dir=root / "log")
        return stack

    def destroy(self) -> None:
        self.kill_all()
        server = self.database_url.rsplit("/", 1)[0]
        for url in (self.database_url, self.restored_url):
            _admin(server, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        subprocess.run(["redis-cli", "-u", self.redis_url, "FLUSHDB"], check=False,
                       capture_output=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self, *, web_instances: int, admin_password: str, web_workers: int = 1) -> str:
        """Render the files and run what init.sh runs after writing .env; bootstrap's output
        (the first invite link). `web_workers`: gunicorn workers per instance (WEB_WORKERS)."""
        sockets = [f"unix:{self.root}/web{i}.sock" for i in range(1, web_instances + 1)]
        for i, bind in enumerate(sockets, start=1):
            render(self.root / f"units{i}", root=self.root, web_bind=bind, upstreams=sockets,
                   web_workers=web_workers)
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.manage("sync_roles")
        self.manage("sync_schedules")
        check = self.manage("check", "--deploy")
        assert "DEBUG" not in check, check
        return self.manage("bootstrap", extra_env={"ZSPB_ADMIN_PASSWORD": admin_password})

    def serve(self, *, web_instances: int, workers: int) -> dict[str, list[Process]]:
        """Start the web and worker units and nginx; wait until the site is ready."""
        units = self.root / "units1"
        started = {
            "web": [self.start_unit(f"web{i}", self.root / f"units{i}" / "zspb-web.service",
                                    WEB_STOP_TIMEOUT) for i in range(1, web_instances + 1)],
            "worker": [self.start_unit(f"worker{i}", units / "zspb-worker.service",
                                       WORKER_STOP_TIMEOUT) for i in range(1, workers + 1)],
        }
        conf = nginx_config(self.root, units / "zspb.nginx.conf", self.port)
        started["nginx"] = [self.start("nginx", ["nginx", "-p", str(self.root), "-c", str(conf),
                                                 "-g", "daemon off;"],
                                       dict(os.environ), str(self.root), 10)]
        for i in range(1, web_instances + 1):
            wait_for(lambda i=i: Path(f"{self.root}/web{i}.sock").exists(), 60, f"web{i} socket")
        wait_for(lambda: httpx.get(f"{self.url}/api/health/ready", timeout=5).status_code == 200,
                 60, "readiness through nginx")
        return started

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: str,
              stop_timeout: float) -> Process:
        log = self.root / "log" / f"{name}.out"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                # systemd starts each unit in its own cgroup; a session is the nearest here.
                start_new_session=True)
        process = Process(name=name, popen=popen, log=log, stop_timeout=stop_timeout)
        self.processes.append(process)
        return process

    def start_unit(self, name: str, unit_file: Path, stop_timeout: float) -> Process:
        unit = read_unit(unit_file)
        return self.start(name, unit.argv, unit.env, unit.cwd, stop_timeout)

    def manage(self, *args: str, env_file: Path | None = None,
               extra_env: dict[str, str] | None = None) -> str:
        """`manage.py ARGS` as init.sh runs it, with the stack's .env; its output."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "ZSPB_ENV_FILE": str(env_file or self.root / "env"),
               "ZSPB_VAR_DIR": str(self.root / "var"), **(extra_env or {})}
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE, env=env,
                                capture_output=True, text=True, check=False, timeout=600)
        assert result.returncode == 0, f"manage.py {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout

    def stop(self, process: Process, signum: int = signal.SIGTERM) -> float:
        """Stop as systemd's KillMode=mixed does: the signal to the main process only, then
        SIGKILL to whatever is left at the timeout. Returns the seconds every process took."""
        started = time.monotonic()
        if process.popen.poll() is None:
            process.popen.send_signal(signum)
        while process.group() or process.popen.poll() is None:
            if time.monotonic() - started > process.stop_timeout:
                process.signal_group(signal.SIGKILL)
                process.popen.wait(timeout=5)
                raise AssertionError(
                    f"{process.name} still ran {process.stop_timeout:.0f} s after SIGTERM:\n"
                    + process.log.read_text()[-3000:])
            time.sleep(0.05)
        return time.monotonic() - started

    def kill_all(self) -> None:
        for process in self.processes:
            process.signal_group(signal.SIGCONT)
            process.signal_group(signal.SIGKILL)
            if process.popen.poll() is None:
                process.popen.kill()
            process.popen.wait(timeout=5)


NGINX_CONF = """\
{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/log/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {root}/log/nginx-access.log;
    client_body_temp_path {root}/nginx-tmp/body;
    proxy_temp_path {root}/nginx-tmp/proxy;
    fastcgi_temp_path {root}/nginx-tmp/fastcgi;
    uwsgi_temp_path {root}/nginx-tmp/uwsgi;
    scgi_temp_path {root}/nginx-tmp/scgi;
    include {site};
}}
"""


def nginx_config(root: Path, rendered_site: Path, port: int) -> Path:
    """The rendered site on 127.0.0.1:PORT instead of port 80, in a throwaway nginx.conf."""
    site = rendered_site.read_text()
    assert "listen 80 default_server;" in site
    site = site.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    site = site.replace("    listen [::]:80 default_server;\n", "")
    local_site = root / "zspb.nginx.conf"
    local_site.write_text(site)
    (root / "nginx-tmp").mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    # As root, nginx's workers would otherwise run as nobody and could not read the test's
    # private directories (on a server, www-data reads them through the zspb group).
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, root=root, site=local_site))
    return conf


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # any failure means "not yet"
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready within {timeout:.0f} s (last error: {last!r})")
