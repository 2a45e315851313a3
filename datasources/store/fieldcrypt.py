"""Encryption of personal data at rest, with a keyed blind index for exact-match lookup.

Every ciphertext names its key id and algorithm (``enc1:<kid>:<alg>:<base64 nonce‖ciphertext‖tag>``),
so a rotated key or a switched algorithm (AES-256-GCM ↔ SM4-GCM) applies to new writes at once
while old rows stay readable; the re-encryption job (``datasources.store.reencrypt``) moves them.
The column is bound as associated data: a value copied into another column does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

from datasources.crypto.primitives import CryptoError, Sealer
from datasources.store.keyring import BLIND_INDEX, FIELD, Key, Keyring

PREFIX = "enc1"


class FieldCipher:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._sealers: dict[str, Sealer] = {}

    def _sealer(self, key: Key) -> Sealer:
        sealer = self._sealers.get(key.kid)
        if sealer is None:
            sealer = self._sealers[key.kid] = Sealer(key.algorithm, key.material)  # type: ignore[arg-type]
        return sealer

    @property
    def key_id(self) -> str:
        return self.keyring.active(FIELD).kid

    def encrypt(self, plaintext: str, *, context: str) -> str:
        key = self.keyring.active(FIELD)
        sealed = self._sealer(key).seal(plaintext.encode(), context.encode())
        return f"{PREFIX}:{key.kid}:{key.algorithm}:{base64.urlsafe_b64encode(sealed).decode()}"

    def decrypt(self, token: str, *, context: str) -> str:
        try:
            prefix, kid, algorithm, payload = token.split(":", 3)
        except ValueError:
            raise CryptoError("not an encrypted field value") from None
        key = self.keyring.get(kid)
        if prefix != PREFIX or algorithm != key.algorithm:
            raise CryptoError(f"cannot open a value sealed as {prefix}/{kid}/{algorithm}: key {kid} is {key.algorithm}")
        return self._sealer(key).open(base64.urlsafe_b64decode(payload), context.encode()).decode()

    def is_current(self, token: str) -> bool:
        """Sealed with the active key (and so with the configured algorithm)?"""
        key = self.keyring.active(FIELD)
        return token.startswith(f"{PREFIX}:{key.kid}:{key.algorithm}:")

    def blind_index(self, value: str, *, context: str) -> str:
        normalized = unicodedata.normalize("NFKC", value).strip().upper()
        index_key = self.keyring.active(BLIND_INDEX).material
        return hmac.new(index_key, f"{context}\x00{normalized}".encode(), hashlib.sha256).hexdigest()
