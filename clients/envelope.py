"""Sensitive fields that travel encrypted, as a front end does it (the gateway uses the same code).

1. Fetch the server's transport key once: ``GET /security/transport-key`` → ``{kid, algorithm,
   publicKeyPem}`` (RSA-OAEP with SHA-256, 2048 or 4096 bits).
2. Per request, make a data key (SM4-GCM, 16 bytes, or AES-256-GCM, 32 bytes), wrap it with the
   server's key and send it in ``X-Encryption-Key: <kid>.<base64 wrapped key>`` with
   ``X-Encryption-Alg: SM4GCM`` or ``A256GCM``.
3. Put any sensitive variable in as ``"enc:<base64 nonce ‖ ciphertext ‖ tag>"``, sealed with the
   data key and, as associated data, its path in the variables (``input.documentNumber``): a
   value moved to another field does not open.
4. The answer's sensitive fields (``documentNumber``, ``phone``, ``cardNo``, ...) come back the
   same way, sealed with the same data key, their path in ``data`` as associated data
   (``me.patients.0.documentNumber``). Nothing else changes: masking still applies.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datasources.crypto import primitives
from datasources.crypto.primitives import SealAlgorithm, Sealer

KEY_HEADER = "x-encryption-key"
ALG_HEADER = "x-encryption-alg"
PREFIX = "enc:"
# Output fields sealed when the request carried a data key.
SENSITIVE_FIELDS = frozenset(
    {"documentNumber", "phone", "cardNo", "address", "addressDetail", "bankCardNumber", "idNumber"}
)


def seal_value(sealer: Sealer, value: str, path: str) -> str:
    return PREFIX + base64.b64encode(sealer.seal(value.encode(), path.encode())).decode()


def open_value(sealer: Sealer, value: str, path: str) -> str:
    try:
        raw = base64.b64decode(value[len(PREFIX) :], validate=True)
    except ValueError as exc:
        raise primitives.CryptoError(f"{path}: the sealed value is not base64") from exc
    return sealer.open(raw, path.encode()).decode()


def walk(value: Any, path: str, visit: Callable[[str, str, str], str | None]) -> Any:
    """Copies ``value``, replacing each string leaf for which ``visit(key, path, text)`` returns a string."""
    if isinstance(value, dict):
        return {k: walk(v, f"{path}.{k}" if path else k, visit) for k, v in value.items()}
    if isinstance(value, list):
        return [walk(v, f"{path}.{i}", visit) for i, v in enumerate(value)]
    if isinstance(value, str):
        key = path.rsplit(".", 1)[-1]
        replaced = visit(key, path, value)
        return value if replaced is None else replaced
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """A front end's data key for one request, wrapped for the server."""

    algorithm: SealAlgorithm
    data_key: bytes
    kid: str
    wrapped: bytes

    @classmethod
    def new(cls, server_public_key_pem: str, kid: str, algorithm: SealAlgorithm = "SM4GCM") -> Envelope:
        public = primitives.load_public_key(server_public_key_pem.encode())
        if primitives.algorithm_of(public) != "RSA-SHA256":
            raise primitives.CryptoError("the transport key is an RSA key")
        data_key = primitives.new_data_key(algorithm)
        return cls(algorithm, data_key, kid, primitives.wrap(public, data_key))  # type: ignore[arg-type]

    @property
    def sealer(self) -> Sealer:
        return Sealer(self.algorithm, self.data_key)

    def headers(self) -> dict[str, str]:
        return {KEY_HEADER: f"{self.kid}.{base64.b64encode(self.wrapped).decode()}", ALG_HEADER: self.algorithm}

    def seal(self, value: str, path: str) -> str:
        return seal_value(self.sealer, value, path)

    def open_response(self, data: Any) -> Any:
        """The answer's ``data`` with every sealed field opened."""
        sealer = self.sealer
        return walk(
            data, "", lambda _k, path, text: open_value(sealer, text, path) if text.startswith(PREFIX) else None
        )
