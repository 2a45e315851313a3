"""Sensitive fields that travel encrypted (clients/envelope.py says how a front end sends them).

For a POST to /graphql carrying ``X-Encryption-Key``, this middleware unwraps the request's data
key with the server's RSA-OAEP transport key (managed by the keyring, created on first use),
opens every ``enc:`` variable before the GraphQL view sees it, and seals the sensitive fields of
the answer with the same key. It sits inside the signature check: signatures cover the bytes as
they travel, sealed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from bff.security.gateway import read_body, replaying
from clients.envelope import ALG_HEADER, KEY_HEADER, PREFIX, SENSITIVE_FIELDS, open_value, seal_value, walk
from datasources.crypto import primitives
from datasources.crypto.primitives import SEAL_ALGORITHMS, CryptoError, Sealer
from datasources.store.keyring import TRANSPORT, Keyring

_KEY_HEADER, _ALG_HEADER = KEY_HEADER.encode(), ALG_HEADER.encode()  # ASGI header names are lower-case bytes


class EnvelopeRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def transport_key(keyring: Keyring, algorithm: str) -> dict[str, str]:
    """The server's public transport key, created on first use."""
    key = await keyring.ensure(TRANSPORT, algorithm)
    return {"kid": key.kid, "algorithm": key.algorithm, "publicKeyPem": key.public_pem or ""}


class Unwrapper:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._private: dict[str, rsa.RSAPrivateKey] = {}

    def sealer(self, key_header: str, alg_header: str) -> Sealer:
        kid, _, wrapped_b64 = key_header.partition(".")
        if alg_header not in SEAL_ALGORITHMS:
            raise EnvelopeRefused(f"X-Encryption-Alg is one of {', '.join(SEAL_ALGORITHMS)}.")
        try:
            key = self.keyring.get(kid)
        except CryptoError:
            raise EnvelopeRefused(f"Transport key {kid} is unknown; fetch /security/transport-key again.") from None
        if key.purpose != TRANSPORT:
            raise EnvelopeRefused(f"{kid} is not a transport key; fetch /security/transport-key.")
        private = self._private.get(kid)
        if private is None:
            loaded = primitives.load_private_key(key.material)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            private = self._private[kid] = loaded
        try:
            data_key = primitives.unwrap(private, base64.b64decode(wrapped_b64, validate=True))
            return Sealer(alg_header, data_key)  # type: ignore[arg-type]
        except (binascii.Error, ValueError) as exc:
            raise EnvelopeRefused(f"The data key does not unwrap with transport key {kid}: {exc}") from None


class EncryptedFields:
    def __init__(self, app: Any, *, unwrapper: Callable[[], Unwrapper | None]) -> None:
        self.app = app
        self.unwrapper = unwrapper

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        unwrapper = self.unwrapper()
        wanted = (_KEY_HEADER, _ALG_HEADER)
        headers = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in wanted}
        if KEY_HEADER not in headers or unwrapper is None:
            await self.app(scope, receive, send)
            return
        body, too_large = await read_body(receive)
        if too_large:
            await _refuse(send, "The encrypted request is too large.")
            return
        try:
            sealer = unwrapper.sealer(headers[KEY_HEADER], headers.get(ALG_HEADER, ""))
            payload = orjson.loads(body)
            if not isinstance(payload, dict):
                raise EnvelopeRefused("An encrypted request is one GraphQL operation (a JSON object).")
            payload["variables"] = walk(payload.get("variables") or {}, "", _opener(sealer))
        except (EnvelopeRefused, orjson.JSONDecodeError, CryptoError) as exc:
            await _refuse(send, getattr(exc, "message", str(exc)))
            return
        opened = orjson.dumps(payload)
        inner = {
            **scope,
            "headers": [
                (name, str(len(opened)).encode() if name.lower() == b"content-length" else value)
                for name, value in scope["headers"]
            ],
        }
        await self.app(inner, replaying(opened, receive), _sealing(send, sealer))


def _opener(sealer: Sealer) -> Callable[[str, str, str], str | None]:
    def visit(_key: str, path: str, text: str) -> str | None:
        if not text.startswith(PREFIX):
            return None
        try:
            return open_value(sealer, text, path)
        except CryptoError as exc:
            raise EnvelopeRefused(f"Variable {path} does not open with the request's data key: {exc}") from None

    return visit


def _sealing(send: Any, sealer: Sealer) -> Any:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def sealing(message: Any) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and answer.get("data"):

            def seal(key: str, path: str, text: str) -> str | None:
                return seal_value(sealer, text, path) if key in SENSITIVE_FIELDS else None

            answer["data"] = walk(answer["data"], "", seal)
            body = orjson.dumps(answer)
        headers = [
            (name, str(len(body)).encode() if name.lower() == b"content-length" else value)
            for name, value in start.get("headers", [])
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return sealing


async def _refuse(send: Any, message: str) -> None:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": "ENCRYPTION_INVALID"}}]})
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
