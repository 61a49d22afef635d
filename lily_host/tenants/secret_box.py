"""Encryption at rest for tenant secrets, with key rotation.

``LILY_SECRET_KEY`` holds one or more Fernet keys, comma-separated: the first encrypts, all
decrypt. Rotate by putting a new key first, running ``lily tenants rotate-secrets``, then
dropping the old key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.tenant import STORED_SECRET_PREFIX

PREFIX = STORED_SECRET_PREFIX


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigurationError("LILY_SECRET_KEY is empty: set it to a Fernet key (lily keygen)")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError) as error:
            raise ConfigurationError(
                "LILY_SECRET_KEY must be comma-separated Fernet keys (32 url-safe base64 bytes each); "
                "make one with `lily keygen`"
            ) from error

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith(PREFIX)

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not self.is_encrypted(stored):
            raise ValueError("value is not an encrypted secret")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as error:
            raise ConfigurationError(
                "a stored secret cannot be decrypted with any key in LILY_SECRET_KEY "
                "(was a key removed before `lily tenants rotate-secrets`?)"
            ) from error

    def rotate(self, stored: str) -> str:
        """Re-encrypt ``stored`` with the first (newest) key."""
        return PREFIX + self._fernet.rotate(stored[len(PREFIX) :].encode()).decode()
