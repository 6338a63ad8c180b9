#!/usr/bin/env bash
# Production installer for Ubuntu 22.04 — PLACEHOLDER.
# The real installer arrives with the deployment issue. Until then this script only says so.
set -euo pipefail

cat >&2 <<'MSG'
init.sh: the production installer is NOT IMPLEMENTED YET.

It will set up a fresh Ubuntu 22.04 server: system packages, firewall, PostgreSQL, Redis,
nginx, gunicorn, systemd units (site, django-q2 worker, Discord bot) and a certbot TLS
certificate. It arrives with the deployment issue; nothing has been changed on this machine.

For a local trial now:   make run      (SQLite, generated secrets, http://127.0.0.1:8000)
For a server, see the "Deployment" section of README.md and ansible/README.md.
MSG
exit 1
