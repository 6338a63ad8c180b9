"""Secrets for the embedded default (no .env): generated once, kept in var/local-secrets.json.

Keeping them on disk means sessions survive a restart and encrypted columns stay readable.
Production sets every secret in .env instead and never reaches this module.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def local_secrets(var_dir: Path) -> dict[str, str]:
    path = var_dir / "local-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        if "LICENSE_SIGNING_KEY" not in stored:  # files written before the key existed
            stored["LICENSE_SIGNING_KEY"] = secrets.token_hex(32)
            path.write_text(json.dumps(stored, indent=2), encoding="utf-8")
        return stored
    var_dir.mkdir(parents=True, exist_ok=True)
    generated = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DIGEST_SECRET": secrets.token_urlsafe(32),
        "BOT_API_TOKEN": secrets.token_urlsafe(32),
        "LICENSE_SIGNING_KEY": secrets.token_hex(32),
    }
    path.write_text(json.dumps(generated, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return generated
