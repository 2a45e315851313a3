"""Encryption of personal data at rest, with a keyed blind index for exact-match lookup.

Every ciphertext names its key id and algorithm (``enc1:<kid>:<alg>:<base64>``), so a new key or
algorithm applies to new writes while old rows stay readable. Keys are derived from one master key
with HKDF, one per purpose; the gateway-security issue replaces this keyring with managed keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALG_AES_GCM = "A256GCM"
PREFIX = "enc1"


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(master)


class FieldCipher:
    def __init__(self, master_key: bytes, *, key_id: str = "k1") -> None:
        if len(master_key) < 32:
            raise ValueError("the master key must be at least 32 bytes")
        self.key_id = key_id
        self._keys = {key_id: AESGCM(_derive(master_key, f"field-encryption:{key_id}"))}
        self._index_key = _derive(master_key, "blind-index")

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """``context`` (the column) is bound as associated data: a value moved to another column fails."""
        nonce = os.urandom(12)
        sealed = self._keys[self.key_id].encrypt(nonce, plaintext.encode(), context.encode())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}:{self.key_id}:{ALG_AES_GCM}:{payload}"

    def decrypt(self, token: str, *, context: str) -> str:
        prefix, key_id, alg, payload = token.split(":", 3)
        if prefix != PREFIX or alg != ALG_AES_GCM or key_id not in self._keys:
            raise ValueError(f"cannot decrypt a value sealed with {prefix}/{key_id}/{alg}")
        raw = base64.urlsafe_b64decode(payload)
        return self._keys[key_id].decrypt(raw[:12], raw[12:], context.encode()).decode()

    def blind_index(self, value: str, *, context: str) -> str:
        normalized = unicodedata.normalize("NFKC", value).strip().upper()
        digest = hmac.new(self._index_key, f"{context}\x00{normalized}".encode(), hashlib.sha256)
        return digest.hexdigest()
