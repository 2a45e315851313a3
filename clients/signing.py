"""Request signing, as every app that calls the gateway does it (the gateway verifies with the same code).

Each request carries these headers::

    X-App-Id          the app's registered id
    X-Cert-Serial     the serial (hex) of the app's certificate whose key signed
    X-Sign-Alg        SM2-SM3 or RSA-SHA256: the algorithm registered for the app, no other
    X-Timestamp       Unix time in milliseconds; the gateway accepts a few minutes of skew
    X-Nonce           16+ random characters, never reused by the app
    X-Content-Digest  hex SM3 (SM2-SM3) or SHA-256 (RSA-SHA256) of the body bytes as sent
    X-Signature       base64 of the signature over the canonical string below

The canonical string is these lines, each ending in ``\\n``::

    app id
    algorithm
    HTTP method, upper case (WS for a WebSocket's connection_init)
    path, as sent (no host, no query)
    query: the pairs decoded, sorted by key then value, encoded again as a form (urlencode: a
           space is +, ~ stays) and joined by & ("" if none): not the bytes as sent
    timestamp
    nonce
    content digest

SM2 signatures use SM3 with the default user ID 1234567812345678 and travel DER-encoded
(the gateway also accepts raw r ‖ s). Responses are signed the same way for apps registered
with response signing: the canonical string is app id, algorithm, ``RESPONSE``, the request's
nonce, the status code, timestamp, nonce and the body's digest, signed by the BFF's key whose
certificate (issued by the same CA) is served at ``/security/response-certificate``.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from datasources.crypto import primitives
from datasources.crypto.primitives import DigestAlgorithm, PrivateKey, PublicKey, SignatureAlgorithm

APP_ID = "x-app-id"
CERT_SERIAL = "x-cert-serial"
SIGN_ALG = "x-sign-alg"
TIMESTAMP = "x-timestamp"
NONCE = "x-nonce"
CONTENT_DIGEST = "x-content-digest"
SIGNATURE = "x-signature"
REQUEST_HEADERS = (APP_ID, CERT_SERIAL, SIGN_ALG, TIMESTAMP, NONCE, CONTENT_DIGEST, SIGNATURE)


def digest_algorithm(algorithm: str) -> DigestAlgorithm:
    return "SM3" if algorithm == "SM2-SM3" else "SHA256"


def content_digest(algorithm: str, body: bytes) -> str:
    return primitives.digest(digest_algorithm(algorithm), body).hex()


def canonical_query(query: str) -> str:
    """``b=2&a=1&a=0`` → ``a=0&a=1&b=2``: what both sides sign, whatever order or percent-encoding
    the client sent (``%20`` and ``+`` both become ``+``, ``%7E`` becomes ``~``)."""
    if not query:
        return ""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return urlencode(pairs)


def canonical_request(
    *, app_id: str, algorithm: str, method: str, path: str, query: str, timestamp: str, nonce: str, digest: str
) -> bytes:
    lines = (app_id, algorithm, method.upper(), path, canonical_query(query), timestamp, nonce, digest)
    return "".join(f"{line}\n" for line in lines).encode()


def canonical_response(
    *, app_id: str, algorithm: str, request_nonce: str, status: int, timestamp: str, nonce: str, digest: str
) -> bytes:
    lines = (app_id, algorithm, "RESPONSE", request_nonce, str(status), timestamp, nonce, digest)
    return "".join(f"{line}\n" for line in lines).encode()


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True, slots=True)
class RequestSigner:
    """Signs an app's requests with its private key (the PEM the gateway handed over when it issued
    the certificate, or the app's own key whose public half it sent)."""

    app_id: str
    serial: str
    key: PrivateKey

    @classmethod
    def from_pem(cls, app_id: str, serial: str, private_key_pem: bytes | str) -> RequestSigner:
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        return cls(app_id, serial, primitives.load_private_key(pem))

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return primitives.algorithm_of(self.key)

    def headers(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        query: str = "",
        timestamp_ms: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        nonce = nonce or new_nonce()
        digest = content_digest(self.algorithm, body)
        message = canonical_request(
            app_id=self.app_id,
            algorithm=self.algorithm,
            method=method,
            path=path,
            query=query,
            timestamp=timestamp,
            nonce=nonce,
            digest=digest,
        )
        signature = base64.b64encode(primitives.sign(self.key, message)).decode()
        return {
            APP_ID: self.app_id,
            CERT_SERIAL: self.serial,
            SIGN_ALG: self.algorithm,
            TIMESTAMP: timestamp,
            NONCE: nonce,
            CONTENT_DIGEST: digest,
            SIGNATURE: signature,
        }

    def connection_init(self, path: str = "/graphql") -> dict[str, str]:
        """The signature fields for a WebSocket's ``connection_init`` payload (method ``WS``, empty body)."""
        return {name.removeprefix("x-"): value for name, value in self.headers("WS", path).items()}


def verify_response(
    server_key: PublicKey, *, app_id: str, request_nonce: str, status: int, headers: Mapping[str, str], body: bytes
) -> bool:
    """Checks a signed response against the BFF's response-signing public key."""
    algorithm = headers.get(SIGN_ALG, "")
    if headers.get(CONTENT_DIGEST) != content_digest(algorithm, body):
        return False
    message = canonical_response(
        app_id=app_id,
        algorithm=algorithm,
        request_nonce=request_nonce,
        status=status,
        timestamp=headers.get(TIMESTAMP, ""),
        nonce=headers.get(NONCE, ""),
        digest=headers.get(CONTENT_DIGEST, ""),
    )
    try:
        signature = base64.b64decode(headers.get(SIGNATURE, ""), validate=True)
    except ValueError:
        return False
    return primitives.verify(server_key, signature, message)
