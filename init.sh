#!/usr/bin/env bash
# Production installer for a fresh Ubuntu 22.04 server (run as root from a clone of the repository).
#
#   init.sh [--dry-run] [--domain NAME] [--email ADDR] [install]   set up or repair the server
#   init.sh [--dry-run] [--ref REF] upgrade                       fetch, install, migrate, restart
#   init.sh [--dry-run] backup                                    one encrypted backup now
#   init.sh [--dry-run] restore FILE                              restore into an EMPTY database
#
# Idempotent: every step first looks at the machine and does nothing when it is already as
# wanted, so a second `install` changes nothing. --dry-run runs only those read-only probes and
# prints every command that would change something. See README "Deployment" for the layout.
#
# Overridable through the environment: ZSPB_APP_DIR (/opt/zspb), ZSPB_USER (zspb),
# ZSPB_BACKUP_DIR (/var/backups/zspb), ZSPB_BACKUP_KEEP (14), ZSPB_LOG_DIR (/var/log/zspb),
# ZSPB_WEB_WORKERS (from CPUs and memory), ZSPB_SSH_PORT (22), ZSPB_DB_NAME (zspb).
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP_DIR=${ZSPB_APP_DIR:-/opt/zspb}
APP_USER=${ZSPB_USER:-zspb}
DB_NAME=${ZSPB_DB_NAME:-zspb}
BACKUP_DIR=${ZSPB_BACKUP_DIR:-/var/backups/zspb}
BACKUP_KEEP=${ZSPB_BACKUP_KEEP:-14}
LOG_DIR=${ZSPB_LOG_DIR:-/var/log/zspb}
SSH_PORT=${ZSPB_SSH_PORT:-22}
ACME_ROOT=/var/www/certbot
SYSTEMD_DIR=/etc/systemd/system
NGINX_SITE=/etc/nginx/sites-available/zspb
UNITS=(zspb-web.service zspb-worker.service zspb-bot.service zspb-backup.service zspb-backup.timer)
# django-q2's Q_CLUSTER["timeout"] is 60 s: the worker gets that plus a margin to finish a job.
WORKER_STOP_TIMEOUT=90
GRACEFUL_TIMEOUT=30
WEB_STOP_TIMEOUT=45

DRY_RUN=0
DOMAIN=""
EMAIL=""
REF=""
COMMAND=""
RESTORE_FILE=""
CHANGED_UNITS=0
CHANGED_SITE=0

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

say() {
    printf '==> %s\n' "$*"
}

warn() {
    printf '\n!!! %s\n\n' "$*" >&2
}

die() {
    printf 'init.sh: %s\n' "$*" >&2
    exit 1
}

# run COMMAND...: run it, or with --dry-run print it (shell-quoted) instead.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

as_app() {
    run runuser -u "$APP_USER" -- env -C "$APP_DIR" "$@"
}

manage() {
    as_app "$APP_DIR/.venv/bin/python" "$APP_DIR/manage.py" "$@"
}

# install_file SOURCE TARGET MODE OWNER: copy when the content or mode differs; 0 if changed.
install_file() {
    local source=$1 target=$2 mode=$3 owner=$4
    if [ -f "$target" ] && cmp -s "$source" "$target" \
        && [ "$(stat -c '%a %U' "$target")" = "${mode#0} $owner" ]; then
        return 1
    fi
    run install -m "$mode" -o "$owner" -g "$owner" "$source" "$target"
    return 0
}

# ensure_dir DIR MODE OWNER
ensure_dir() {
    local dir=$1 mode=$2 owner=$3
    if [ -d "$dir" ] && [ "$(stat -c '%a %U' "$dir")" = "${mode#0} $owner" ]; then
        return 0
    fi
    run install -d -m "$mode" -o "$owner" -g "$owner" "$dir"
}

env_value() {
    # The value of a variable in .env (empty when the file or the variable is absent).
    [ -r "$APP_DIR/.env" ] || return 0
    sed -n "s/^$1=//p" "$APP_DIR/.env" | tail -n 1 | sed "s/^[\"']//; s/[\"']\$//"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --domain) DOMAIN=${2:?--domain needs a name}; shift ;;
            --email) EMAIL=${2:?--email needs an address}; shift ;;
            --ref) REF=${2:?--ref needs a branch, tag or commit}; shift ;;
            -h | --help) usage; exit 0 ;;
            install | upgrade | backup)
                [ -z "$COMMAND" ] || die "one command at a time"
                COMMAND=$1
                ;;
            restore)
                [ -z "$COMMAND" ] || die "one command at a time"
                COMMAND=restore
                RESTORE_FILE=${2:?restore needs a backup file}
                shift
                ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
        shift
    done
    COMMAND=${COMMAND:-install}
    if [ -n "$DOMAIN" ] && ! [[ $DOMAIN =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
        die "--domain must be a host name, got '$DOMAIN'"
    fi
    [[ $BACKUP_KEEP =~ ^[1-9][0-9]*$ ]] || die "ZSPB_BACKUP_KEEP must be a positive number"
}

require_root() {
    if [ "$(id -u)" != 0 ]; then
        if [ "$DRY_RUN" = 1 ]; then
            warn "not root: the plan below is what a root run would do"
        else
            die "run as root (sudo ./init.sh ...), or with --dry-run to see the plan"
        fi
    fi
}

web_workers() {
    if [ -n "${ZSPB_WEB_WORKERS:-}" ]; then
        echo "$ZSPB_WEB_WORKERS"
        return
    fi
    # 2 per CPU + 1, but an Argon2 hash takes ~100 MiB: at most one worker per 300 MiB of RAM.
    local cpus mem_mb by_cpu by_mem
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    by_cpu=$((cpus * 2 + 1))
    by_mem=$((mem_mb / 300))
    local workers=$((by_cpu < by_mem ? by_cpu : by_mem))
    echo $((workers < 2 ? 2 : workers))
}

# --- install steps -------------------------------------------------------------------------

step_packages() {
    say "System packages"
    local wanted=(python3 python3-venv git openssl postgresql redis-server nginx ufw)
    if [ -n "$DOMAIN" ]; then
        wanted+=(certbot python3-certbot-nginx)
    fi
    local missing=() package
    for package in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all installed: ${wanted[*]}"
        return
    fi
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    local service
    for service in postgresql redis-server nginx; do
        if ! systemctl is-enabled --quiet "$service" 2>/dev/null \
            || ! systemctl is-active --quiet "$service" 2>/dev/null; then
            run systemctl enable --now "$service"
        fi
    done
}

step_user() {
    say "System user $APP_USER and $APP_DIR"
    if ! id -u "$APP_USER" >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir "$APP_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$APP_USER"
    fi
    # nginx (www-data) reaches the socket, static files and loader files through the group.
    if ! id -nG www-data 2>/dev/null | tr ' ' '\n' | grep -qx "$APP_USER"; then
        run usermod -a -G "$APP_USER" www-data
    fi
    if [ "$SRC_DIR" != "$APP_DIR" ] && [ ! -d "$APP_DIR/.git" ]; then
        run git clone --quiet --no-hardlinks "$SRC_DIR" "$APP_DIR"
        local origin
        origin=$(git -C "$SRC_DIR" remote get-url origin 2>/dev/null || true)
        if [ -n "$origin" ]; then
            run git -C "$APP_DIR" remote set-url origin "$origin"
        fi
    fi
    if [ ! -d "$APP_DIR" ] || [ -n "$(find "$APP_DIR" -not -user "$APP_USER" -print -quit)" ]; then
        run chown -R "$APP_USER:$APP_USER" "$APP_DIR"
    fi
    ensure_dir "$APP_DIR" 750 "$APP_USER"
    ensure_dir "$APP_DIR/var" 750 "$APP_USER"
    ensure_dir "$APP_DIR/var/media" 750 "$APP_USER"
    ensure_dir "$APP_DIR/var/static" 750 "$APP_USER"
    ensure_dir "$LOG_DIR" 750 "$APP_USER"
    ensure_dir "$BACKUP_DIR" 700 "$APP_USER"
    ensure_dir "$ACME_ROOT" 755 root
}

step_venv() {
    say "Python environment from requirements/lock.txt"
    local venv=$APP_DIR/.venv stamp want
    stamp=$venv/.zspb-installed
    if [ ! -x "$venv/bin/python" ]; then
        as_app python3 -m venv "$venv"
    fi
    # Before the first clone (--dry-run) the checkout is the one init.sh runs from.
    local code=$APP_DIR
    [ -f "$code/requirements/lock.txt" ] || code=$SRC_DIR
    want=$(cat "$code/requirements/lock.txt" "$code/pyproject.toml" | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "up to date with the lock"
        return
    fi
    as_app "$venv/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
    # The project's runtime dependencies, pinned by the lock (dev tools are not installed).
    as_app "$venv/bin/python" -m pip install --quiet --no-cache-dir \
        -c "$APP_DIR/requirements/lock.txt" -e "$APP_DIR"
    if [ "$DRY_RUN" = 1 ]; then
        echo "+ record the lock's digest in $stamp"
    else
        printf '%s\n' "$want" | runuser -u "$APP_USER" -- tee "$stamp" >/dev/null
    fi
}

pg_port() {
    # The port of the running PostgreSQL cluster: Debian's pg_createcluster takes 5433 or
    # above when 5432 is already in use, e.g. by another PostgreSQL version.
    local port
    port=$(pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $3; exit}')
    echo "${port:-5432}"
}

generate_env() {
    # Prints a complete production .env with fresh secrets.
    local host site https api hosts
    if [ -n "$DOMAIN" ]; then
        host=$DOMAIN site="https://$DOMAIN" https=1 api="https://$DOMAIN/api" hosts=$DOMAIN
    else
        host=$(hostname -I 2>/dev/null | awk '{print $1}')
        host=${host:-127.0.0.1}
        site="http://$host" https=0 api="http://127.0.0.1/api"
        hosts="$host,$(hostname -f 2>/dev/null || hostname)"
    fi
    python3 - "$DB_NAME" "$APP_USER" "$(pg_port)" <<'PY'
import base64, os, secrets, sys
db, user, port = sys.argv[1:4]
fernet = lambda: base64.urlsafe_b64encode(os.urandom(32)).decode()
print(f"""# Written by init.sh on first install; init.sh never overwrites it. Mode 600.
# Every variable is described in .env.example. Keep a copy of DIGEST_SECRET,
# FIELD_ENCRYPTION_KEY and BACKUP_KEY off this server: without them a backup is useless.
DEBUG=0
SECRET_KEY={secrets.token_urlsafe(50)}
DIGEST_SECRET={secrets.token_urlsafe(32)}
FIELD_ENCRYPTION_KEY={fernet()}
BOT_API_TOKEN={secrets.token_urlsafe(32)}
LICENSE_SIGNING_KEY={secrets.token_hex(32)}
# Encrypts backups (manage.py backup / restore, zspb-backup.timer).
BACKUP_KEY={fernet()}
DATABASE_URL=postgres://{user}:{secrets.token_urlsafe(24)}@127.0.0.1:{port}/{db}
REDIS_URL=redis://127.0.0.1:6379/0""")
PY
    cat <<EOF
ALLOWED_HOSTS=$hosts,127.0.0.1,localhost
CSRF_TRUSTED_ORIGINS=$site
SITE_URL=$site
# 0: plain HTTP (no domain); secure cookies, the HTTPS redirect and HSTS are then off.
HTTPS=$https
# nginx in front of gunicorn, setting X-Forwarded-For and X-Forwarded-Proto.
NUM_PROXIES=1
MEDIA_ROOT=$APP_DIR/var/media
LOG_DIR=$LOG_DIR
# nginx serves signed loader downloads from MEDIA_ROOT through this internal location.
LOADER_ACCEL_REDIRECT_PREFIX=/protected-loader
# The Discord bot (zspb-bot.service) starts once both are set; see README "Discord bot".
DISCORD_BOT_TOKEN=
DISCORD_GUILD_ID=
ZSPB_API_BASE=$api
Q_WORKERS=2
EOF
}

step_env() {
    say "Configuration $APP_DIR/.env"
    if [ -f "$APP_DIR/.env" ]; then
        echo "exists; kept as it is (init.sh never overwrites it)"
        if [ -n "$DOMAIN" ] && [ "$(env_value HTTPS)" = 0 ]; then
            warn "$APP_DIR/.env says HTTPS=0 but --domain $DOMAIN was given: set HTTPS=1, \
SITE_URL=https://$DOMAIN, CSRF_TRUSTED_ORIGINS=https://$DOMAIN, add $DOMAIN to ALLOWED_HOSTS \
and ZSPB_API_BASE=https://$DOMAIN/api, then: systemctl restart zspb-web zspb-worker zspb-bot"
        fi
        return
    fi
    if [ "$DRY_RUN" = 1 ]; then
        echo "+ write $APP_DIR/.env (mode 600, owner $APP_USER) with generated secrets (not shown)"
        return
    fi
    local tmp
    tmp=$(mktemp)
    generate_env >"$tmp"
    install -m 600 -o "$APP_USER" -g "$APP_USER" "$tmp" "$APP_DIR/.env"
    rm -f "$tmp"
    echo "written with generated secrets (mode 600)"
}

psql_admin() {
    # psql_admin SQL [SHOWN]: run SQL as the postgres superuser; SHOWN is printed instead of
    # SQL by --dry-run (it hides passwords). SQL goes through stdin, never the process list.
    if [ "$DRY_RUN" = 1 ]; then
        printf '+ runuser -u postgres -- psql -d postgres  <<< "%s"\n' "${2:-$1}"
    else
        printf '%s\n' "$1" | runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -d postgres
    fi
}

psql_probe() {
    runuser -u postgres -- psql -tAq -d postgres -c "$1" 2>/dev/null || true
}

step_database() {
    say "PostgreSQL role and database $DB_NAME"
    local url password
    url=$(env_value DATABASE_URL)
    password=$(printf '%s' "$url" | sed -n 's|^postgres[a-z]*://[^:]*:\([^@]*\)@.*|\1|p')
    if [ -z "$password" ]; then
        [ "$DRY_RUN" = 1 ] || die "no password in DATABASE_URL of $APP_DIR/.env"
        password="<from .env>"
    fi
    if [ "$(psql_probe "SELECT 1 FROM pg_roles WHERE rolname = '$APP_USER'")" != 1 ]; then
        psql_admin "CREATE ROLE \"$APP_USER\" LOGIN PASSWORD '$password';" \
            "CREATE ROLE \"$APP_USER\" LOGIN PASSWORD '***';"
    fi
    if [ "$(psql_probe "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
        run runuser -u postgres -- createdb --owner "$APP_USER" "$DB_NAME"
    fi
}

step_django() {
    say "Migrations, static files, roles, schedules, first administrator"
    manage migrate --noinput
    manage collectstatic --noinput --verbosity 0
    manage sync_roles
    manage sync_schedules
    manage check --database default
    # Warnings are shown, not fatal: a fresh server has no Discord yet (zspb.W001), and a plain-
    # HTTP one rightly gets the cookie, HSTS and redirect warnings.
    manage check --deploy
    # Prints the administrator's generated password the first time only.
    manage bootstrap
}

render() {
    # render DIR [DOMAIN]: the units and the nginx site with this server's values.
    local out=$1 domain=${2:-} renderer=$APP_DIR/deploy/render.py
    [ -f "$renderer" ] || renderer=$SRC_DIR/deploy/render.py
    local args=(--out "$out")
    [ -z "$domain" ] || args+=(--domain "$domain")
    python3 "$renderer" "${args[@]}" >/dev/null \
        "APP_DIR=$APP_DIR" "VENV=$APP_DIR/.venv" "USER=$APP_USER" "GROUP=$APP_USER" \
        "ENV_FILE=$APP_DIR/.env" "VAR_DIR=$APP_DIR/var" "MEDIA_ROOT=$APP_DIR/var/media" \
        "STATIC_ROOT=$APP_DIR/var/static" "LOG_DIR=$LOG_DIR" "BACKUP_DIR=$BACKUP_DIR" \
        "BACKUP_KEEP=$BACKUP_KEEP" "BACKUP_TIME=03:30:00" "WEB_WORKERS=$(web_workers)" \
        "GRACEFUL_TIMEOUT=$GRACEFUL_TIMEOUT" "WEB_STOP_TIMEOUT=$WEB_STOP_TIMEOUT" \
        "WORKER_STOP_TIMEOUT=$WORKER_STOP_TIMEOUT" "MAX_BODY=200m" "ACME_ROOT=$ACME_ROOT" \
        "WEB_BIND=unix:/run/zspb/web.sock" \
        "UPSTREAM_SERVERS=server unix:/run/zspb/web.sock fail_timeout=0;" \
        "CERT_DIR=/etc/letsencrypt/live/$domain"
}

step_units() {
    say "systemd units"
    local work unit
    work=$(mktemp -d)
    render "$work"
    for unit in "${UNITS[@]}"; do
        if install_file "$work/$unit" "$SYSTEMD_DIR/$unit" 644 root; then
            CHANGED_UNITS=1
        fi
    done
    rm -rf "$work"
    if [ "$CHANGED_UNITS" = 1 ]; then
        run systemctl daemon-reload
    else
        echo "unchanged"
    fi
}

bot_configured() {
    [ -n "$(env_value DISCORD_BOT_TOKEN)" ] && [ -n "$(env_value DISCORD_GUILD_ID)" ]
}

step_start() {
    say "Services"
    local units=(zspb-web.service zspb-worker.service zspb-backup.timer) unit
    if bot_configured; then
        units+=(zspb-bot.service)
    else
        echo "zspb-bot.service left off: DISCORD_BOT_TOKEN / DISCORD_GUILD_ID are empty in .env"
    fi
    for unit in "${units[@]}"; do
        if ! systemctl is-enabled --quiet "$unit" 2>/dev/null \
            || ! systemctl is-active --quiet "$unit" 2>/dev/null; then
            run systemctl enable --now "$unit"
        elif [ "$CHANGED_UNITS" = 1 ] && [ "$unit" != zspb-backup.timer ]; then
            run systemctl restart "$unit"
        fi
    done
}

install_site() {
    # install_site [DOMAIN]: render the site (HTTPS variant when DOMAIN is given) and reload.
    local work
    work=$(mktemp -d)
    render "$work" "${1:-}"
    if install_file "$work/zspb.nginx.conf" "$NGINX_SITE" 644 root; then
        CHANGED_SITE=1
    fi
    rm -rf "$work"
    if [ "$(readlink /etc/nginx/sites-enabled/zspb 2>/dev/null)" != "$NGINX_SITE" ]; then
        run ln -sfn "$NGINX_SITE" /etc/nginx/sites-enabled/zspb
        CHANGED_SITE=1
    fi
    # Debian's default site also claims default_server on port 80.
    if [ -e /etc/nginx/sites-enabled/default ]; then
        run rm -f /etc/nginx/sites-enabled/default
        CHANGED_SITE=1
    fi
    if [ "$CHANGED_SITE" = 1 ]; then
        run nginx -t
        run systemctl reload nginx
        CHANGED_SITE=0
    else
        echo "unchanged"
    fi
}

step_nginx() {
    say "nginx"
    if [ -n "$DOMAIN" ] && [ -f "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" ]; then
        install_site "$DOMAIN"
    else
        # Without a certificate yet, the HTTP site answers certbot's challenge first.
        install_site
    fi
}

step_firewall() {
    say "Firewall (ufw): SSH ($SSH_PORT), 80 and 443 only"
    local status rule
    status=$(ufw status 2>/dev/null || true)
    for rule in "$SSH_PORT/tcp" 80/tcp 443/tcp; do
        if ! grep -Eq "^$rule +ALLOW" <<<"$status"; then
            run ufw allow "$rule"
        fi
    done
    if ! grep -q '^Status: active' <<<"$status"; then
        run ufw default deny incoming
        run ufw default allow outgoing
        run ufw --force enable
    fi
}

step_certbot() {
    if [ -z "$DOMAIN" ]; then
        return
    fi
    say "TLS certificate for $DOMAIN (certbot)"
    if [ ! -f "/etc/letsencrypt/live/$DOMAIN/fullchain.pem" ]; then
        local account=(--register-unsafely-without-email)
        [ -z "$EMAIL" ] || account=(--email "$EMAIL")
        # Webroot: nginx keeps running and serves the challenge; renewals (certbot.timer) use the
        # same path and reload nginx through the deploy hook.
        run certbot certonly --non-interactive --agree-tos "${account[@]}" --webroot \
            -w "$ACME_ROOT" -d "$DOMAIN" --deploy-hook "systemctl reload nginx"
    else
        echo "certificate present; renewed by certbot.timer"
    fi
    if ! systemctl is-enabled --quiet certbot.timer 2>/dev/null; then
        run systemctl enable --now certbot.timer
    fi
    install_site "$DOMAIN"
}

cmd_install() {
    require_root
    step_packages
    step_user
    step_venv
    step_env
    step_database
    step_django
    step_units
    step_start
    step_nginx
    step_firewall
    step_certbot
    say "Done"
    if [ -n "$DOMAIN" ]; then
        echo "The site: https://$DOMAIN/  (staff: https://$DOMAIN/admin/)"
    else
        warn "NO DOMAIN GIVEN: THE SITE IS PLAIN HTTP. Passwords, session cookies and licence \
keys cross the network unencrypted. Point a DNS name at this server and rerun: \
./init.sh --domain NAME --email ADDR"
    fi
}

cmd_upgrade() {
    require_root
    [ -d "$APP_DIR/.git" ] || die "$APP_DIR is not a git checkout; run install first"
    say "Fetch the code"
    as_app git fetch --quiet --prune --tags origin
    if [ -n "$REF" ]; then
        local target=$REF
        # As the owner: git refuses a repository owned by someone else ("dubious ownership").
        if runuser -u "$APP_USER" -- git -C "$APP_DIR" rev-parse --verify --quiet "origin/$REF" \
            >/dev/null 2>&1; then
            target=origin/$REF
        fi
        as_app git reset --hard "$target"
    else
        as_app git merge --ff-only '@{upstream}'
    fi
    step_venv
    say "Migrations, static files, roles, schedules"
    manage migrate --noinput
    manage collectstatic --noinput --verbosity 0
    manage sync_roles
    manage sync_schedules
    manage check --database default
    step_units
    say "Restart"
    if [ "$CHANGED_UNITS" = 1 ]; then
        run systemctl restart zspb-web.service
    else
        # HUP: gunicorn starts workers on the new code and retires the old ones after their
        # requests, so the socket never stops answering.
        run systemctl reload zspb-web.service
    fi
    # SIGTERM to the qcluster (KillMode=mixed): it takes no new job and finishes the running
    # ones within TimeoutStopSec; queued jobs wait in the database (ORM broker) for the new one.
    run systemctl restart zspb-worker.service
    if bot_configured; then
        run systemctl restart zspb-bot.service
    fi
    step_nginx
}

cmd_backup() {
    require_root
    say "Backup into $BACKUP_DIR (keeps $BACKUP_KEEP)"
    manage backup --output "$BACKUP_DIR" --keep "$BACKUP_KEEP"
}

cmd_restore() {
    require_root
    [ -f "$RESTORE_FILE" ] || die "no such backup file: $RESTORE_FILE"
    local file
    file=$(realpath "$RESTORE_FILE")
    if [ "$DRY_RUN" = 0 ] && ! runuser -u "$APP_USER" -- test -r "$file"; then
        die "$APP_USER cannot read $file (copy it to $BACKUP_DIR first)"
    fi
    say "Stop the site while restoring"
    run systemctl stop zspb-web.service zspb-worker.service zspb-bot.service
    say "Restore $file (the database must be empty: see README \"Backups\")"
    manage restore "$file"
    say "Done: check the secrets printed above against .env, then start the site:"
    echo "    systemctl start zspb-web zspb-worker$(bot_configured && echo ' zspb-bot')"
}

main() {
    parse_args "$@"
    # A server set up with --domain stays on HTTPS when a later run omits it (upgrade never
    # takes it): the domain is read back from SITE_URL.
    if [ -z "$DOMAIN" ] && [ "$(env_value HTTPS)" != 0 ]; then
        DOMAIN=$(env_value SITE_URL | sed -n 's|^https://\([^/:]*\).*|\1|p')
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "DRY RUN: read-only probes only; commands that would change the machine are printed"
    fi
    case "$COMMAND" in
        install) cmd_install ;;
        upgrade) cmd_upgrade ;;
        backup) cmd_backup ;;
        restore) cmd_restore ;;
    esac
}

main "$@"
