"""Render the deployment templates in deploy/ (systemd units, nginx site) by filling @NAME@
placeholders. Standard library only: init.sh runs it with the system python3 before the venv
exists, and .ci/deploy-checks runs it with test values.

    python3 deploy/render.py --out DIR [--domain NAME] KEY=VALUE ...

Every placeholder must be given (an unfilled one is an error, so a typo in a template or in
init.sh fails loudly instead of shipping "@APP_DIR@" to /etc), except WORKER_GRACE, which is
derived from WORKER_STOP_TIMEOUT unless given. The nginx site is rendered from
site-http.conf.in, or site-https.conf.in when --domain is given; both include the shared
locations.conf.in through the @LOCATIONS@ placeholder.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
UNITS = ("zspb-web.service", "zspb-worker.service", "zspb-bot.service",
         "zspb-backup.service", "zspb-backup.timer")


def fill(template: str, values: dict[str, str], source: str) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise SystemExit(f"render.py: {source}: no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def derived(values: dict[str, str]) -> dict[str, str]:
    """Values computed from others, so the two can never disagree."""
    values = dict(values)
    stop = values.get("WORKER_STOP_TIMEOUT", "")
    if stop.isdigit() and "WORKER_GRACE" not in values:
        # The worker's own deadline for a graceful stop: below systemd's, so it is the worker
        # that kills leftovers (and logs it), not systemd.
        values["WORKER_GRACE"] = str(max(int(stop) - 15, 1))
    return values


def render(out: Path, values: dict[str, str], domain: str | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    values = derived(values)
    written = []
    for unit in UNITS:
        source = HERE / "systemd" / f"{unit}.in"
        target = out / unit
        target.write_text(fill(source.read_text(), values, source.name))
        written.append(target)
    site_values = dict(values)
    locations = HERE / "nginx" / "locations.conf.in"
    site_values["LOCATIONS"] = fill(locations.read_text(), values, locations.name).rstrip()
    site_values["DOMAIN"] = domain or "_"
    site = HERE / "nginx" / ("site-https.conf.in" if domain else "site-http.conf.in")
    target = out / "zspb.nginx.conf"
    target.write_text(fill(site.read_text(), site_values, site.name))
    written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Render the deploy/ templates.")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--domain", default=None)
    parser.add_argument("values", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    values: dict[str, str] = {}
    for item in args.values:
        key, sep, value = item.partition("=")
        if not sep or not PLACEHOLDER.fullmatch(f"@{key}@"):
            parser.error(f"expected KEY=VALUE with an upper-case KEY, got {item!r}")
        values[key] = value
    for path in render(args.out, values, args.domain):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
