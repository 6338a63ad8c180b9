"""deploy/render.py and `init.sh --dry-run`: what the production files and the installer's plan
say. (.ci/deploy-checks proves the rendered files load: systemd-analyze verify, nginx -t.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)
VALUES = {
    "APP_DIR": "/opt/zspb", "VENV": "/opt/zspb/.venv", "USER": "zspb", "GROUP": "zspb",
    "ENV_FILE": "/opt/zspb/.env", "VAR_DIR": "/opt/zspb/var", "MEDIA_ROOT": "/opt/zspb/var/media",
    "STATIC_ROOT": "/opt/zspb/var/static", "LOG_DIR": "/var/log/zspb",
    "BACKUP_DIR": "/var/backups/zspb", "BACKUP_KEEP": "14", "BACKUP_TIME": "03:30:00",
    "WEB_WORKERS": "3", "GRACEFUL_TIMEOUT": "30", "WEB_STOP_TIMEOUT": "45",
    "WORKER_STOP_TIMEOUT": "90", "MAX_BODY": "200m", "ACME_ROOT": "/var/www/certbot",
    "WEB_BIND": "unix:/run/zspb/web.sock",
    "UPSTREAM_SERVERS": "server unix:/run/zspb/web.sock fail_timeout=0;",
    "CERT_DIR": "/etc/letsencrypt/live/zspb.example.com",
}


def _render(
    out: Path, *extra: str, values: dict[str, str] = VALUES
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BASE / "deploy" / "render.py"), "--out", str(out), *extra,
         *(f"{key}={value}" for key, value in values.items())],
        capture_output=True, text=True, check=False)


def test_units_and_plain_http_site(tmp_path: Path) -> None:
    assert _render(tmp_path).returncode == 0
    web = (tmp_path / "zspb-web.service").read_text()
    assert "-k config.workers.UvicornWorker" in web
    assert "--bind unix:/run/zspb/web.sock" in web
    assert "--workers 3" in web and "--graceful-timeout 30" in web
    assert "--keep-alive 75" in web
    for unit in ("zspb-web.service", "zspb-worker.service", "zspb-bot.service",
                 "zspb-backup.service"):
        text = (tmp_path / unit).read_text()
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "User=zspb"):
            assert line in text, (unit, line)
        assert "@" not in text.replace("@.service", "")
    worker = (tmp_path / "zspb-worker.service").read_text()
    assert "manage.py worker --stop-timeout 75" in worker and "TimeoutStopSec=90" in worker
    assert "KillSignal=SIGTERM" in worker and "KillMode=mixed" in worker
    site = (tmp_path / "zspb.nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site
    assert "$proxy_add_x_forwarded_for" not in site
    assert "Strict-Transport-Security" not in site and "listen 443" not in site
    assert "internal;" in site and "alias /opt/zspb/var/media/;" in site
    assert "client_max_body_size 200m;" in site
    assert "keepalive_timeout 60s;" in site


def test_https_site_has_the_certificate_hsts_and_a_redirect(tmp_path: Path) -> None:
    assert _render(tmp_path, "--domain", "zspb.example.com").returncode == 0
    site = (tmp_path / "zspb.nginx.conf").read_text()
    assert "ssl_certificate /etc/letsencrypt/live/zspb.example.com/fullchain.pem;" in site
    assert "Strict-Transport-Security" in site
    assert "return 301 https://$host$request_uri;" in site


def test_a_missing_value_is_an_error(tmp_path: Path) -> None:
    values = {key: value for key, value in VALUES.items() if key != "VENV"}
    result = _render(tmp_path, values=values)
    assert result.returncode != 0
    assert "no value for VENV" in result.stderr


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs bash")
def test_init_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    app = tmp_path / "app"
    env = {**os.environ, "ZSPB_APP_DIR": str(app), "ZSPB_LOG_DIR": str(tmp_path / "log"),
           "ZSPB_BACKUP_DIR": str(tmp_path / "backups")}
    result = subprocess.run(["bash", str(BASE / "init.sh"), "--dry-run", "install"], env=env,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    for step in ("manage.py migrate --noinput", "manage.py bootstrap", "systemctl daemon-reload",
                 "nginx -t", "ufw allow 443/tcp", f"write {app}/.env (mode 600"):
        assert step in plan, step
    assert "THE SITE IS PLAIN HTTP" in result.stderr
    assert not app.exists() and not (tmp_path / "log").exists()
