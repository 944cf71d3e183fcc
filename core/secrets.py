"""Encryption of connector secrets with a Fernet key derived from ``CLASP_SECRET_KEY``."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretsError(Exception):
    pass


def fernet_for(secret_key: str) -> Fernet:
    # HKDF with a fixed info string: the same SECRET_KEY can derive other keys for other purposes.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"clasp connector secrets").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_json(secret_key: str, values: dict[str, Any]) -> str:
    return fernet_for(secret_key).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_json(secret_key: str, token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(fernet_for(secret_key).decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretsError(
            "cannot decrypt connector secrets: CLASP_SECRET_KEY differs from the one they were stored with"
        ) from exc


def mask(value: str | None) -> str:
    if not value:
        return ""
    return "••••" + value[-4:] if len(value) > 8 else "••••"
