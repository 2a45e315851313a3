"""The master key in an HSM, through PKCS#11: a ``KeyEncryptionKey`` whose key never leaves the token.

The key is an AES-256 secret key object found by label in a token (the token found by its label,
the session logged in with the user PIN), created SENSITIVE and not EXTRACTABLE (``create_key``,
``python -m bff.keys hsm-init``). Wrapping and unwrapping a managed key are encryption and
decryption calls inside the HSM; this process only ever holds the managed key's material.

Two schemes, recorded in each row's prefix so a row says how, and by which KEK, it was wrapped:

``hsm1:<kek_id>:<base64(iv ‖ ciphertext ‖ tag)>``
    CKM_AES_GCM, a random 12-byte IV, a 128-bit tag and ``managed-key:<kid>`` as associated data:
    the same construction as the file master key (``mk1``), so a row copied under another key id
    does not unwrap. Used whenever the token offers CKM_AES_GCM.

``hsm1-etm:<kek_id>:<base64(iv ‖ ciphertext ‖ mac)>``
    For tokens without GCM: CKM_AES_CBC_PAD with a random 16-byte IV, then CKM_SHA256_HMAC
    (encrypt-then-MAC) with a second key in the token, a 256-bit generic secret labelled
    ``<key label>.mac``, over ``hsm1-etm``, the length-prefixed associated data, the IV and the
    ciphertext. The MAC is checked (by the HSM) before anything is decrypted.

``kek_id`` is derived from the token label and the key label (not secret, and the same on every
HSM of a cluster holding the same key). PKCS#11 calls block; they are few (one per managed key on a
keyring refresh) and short, like the file master key's.

One logged-in session per token and process is shared by every ``Pkcs11KeyEncryptionKey`` (a PKCS#11
login belongs to the application, not to a session); a session the HSM lost (restart, failover)
is opened again once per call.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams
from sqlalchemy import select
from sqlmodel import col

from datasources.crypto.primitives import CryptoError
from datasources.store.db import Database
from datasources.store.keyring import KeyEncryptionKey
from datasources.store.models import ManagedKey

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

log = logging.getLogger(__name__)

GCM = "AES-GCM"
ETM = "AES-CBC-PAD+HMAC-SHA256"
SCHEMES = (GCM, ETM)
PREFIXES = {GCM: "hsm1", ETM: "hsm1-etm"}
_SCHEME_OF_PREFIX = {prefix: scheme for scheme, prefix in PREFIXES.items()}
MAC_LABEL_SUFFIX = ".mac"
_GCM_IV = 12
_GCM_TAG = 16
_CBC_IV = 16
_MAC = 32

# A session the HSM no longer knows: open a new one and try once more.
_SESSION_LOST: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
    p11.DeviceError,
)

_T = TypeVar("_T")
_lock = threading.RLock()
_libraries: dict[str, Library] = {}
_sessions: dict[tuple[str, str], pkcs11.Session] = {}


def library(module: str) -> Library:
    """The PKCS#11 module, loaded and C_Initialize'd once per process (python-pkcs11 keeps it)."""
    with _lock:
        lib = _libraries.get(module)
        if lib is None:
            try:
                lib = pkcs11.lib(module)
            except p11.PKCS11Error as exc:
                raise CryptoError(f"cannot load the PKCS#11 module {module}: {exc}") from exc
            _libraries[module] = lib
        return lib


def release() -> None:
    """Closes the shared sessions (logging out) and unloads the modules: the end of a command, or of
    a test that made its own token. The next use loads everything again."""
    with _lock:
        for session in _sessions.values():
            _close_quietly(session)
        _sessions.clear()
        for module in _libraries:
            try:
                pkcs11.unload(module)
            except p11.PKCS11Error as exc:
                log.warning("PKCS#11 module %s did not finalize cleanly: %s", module, type(exc).__name__)
        _libraries.clear()


def _close_quietly(session: pkcs11.Session) -> None:
    try:
        session.close()
    except p11.PKCS11Error:
        pass  # the HSM already forgot it


def _token(module: str, token_label: str) -> pkcs11.Token:
    try:
        return library(module).get_token(token_label=token_label)
    except p11.NoSuchToken:
        raise CryptoError(f"no PKCS#11 token labelled {token_label!r} in {module}") from None
    except p11.MultipleTokensReturned:
        raise CryptoError(
            f"several PKCS#11 tokens are labelled {token_label!r} in {module}: labels must be unique"
        ) from None


def _session(module: str, token_label: str, pin: str) -> pkcs11.Session:
    """The process's logged-in session on the token, opened on first use."""
    with _lock:
        session = _sessions.get((module, token_label))
        if session is None:
            token = _token(module, token_label)
            try:
                session = token.open(user_pin=pin)
            except p11.UserAlreadyLoggedIn:
                session = token.open()  # someone else in this process logged in: the login is shared
            except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinLocked, p11.PinExpired) as exc:
                raise CryptoError(
                    f"the PKCS#11 token {token_label!r} refuses MASTER_KEY_PKCS11_PIN ({type(exc).__name__})"
                ) from None
            _sessions[(module, token_label)] = session
        return session


def _forget_session(module: str, token_label: str, session: pkcs11.Session) -> None:
    with _lock:
        if _sessions.get((module, token_label)) is session:
            del _sessions[(module, token_label)]
            _close_quietly(session)


def kek_id_for(token_label: str, key_label: str) -> str:
    """Names the HSM key in wrapped rows: a digest of the labels, so any label is safe in the format."""
    return hashlib.sha256(f"pkcs11\0{token_label}\0{key_label}".encode()).hexdigest()[:12]


def _supported_scheme(session: pkcs11.Session, wanted: str | None) -> str:
    mechanisms = session.token.slot.get_mechanisms()
    can = {
        GCM: Mechanism.AES_GCM in mechanisms,
        ETM: Mechanism.AES_CBC_PAD in mechanisms and Mechanism.SHA256_HMAC in mechanisms,
    }
    if wanted is not None:
        if wanted not in can:
            raise CryptoError(f"unknown HSM wrapping scheme {wanted!r}; one of {', '.join(SCHEMES)}")
        if not can[wanted]:
            raise CryptoError(f"the PKCS#11 token {session.token.label!r} does not offer {wanted}")
        return wanted
    for scheme in SCHEMES:
        if can[scheme]:
            return scheme
    raise CryptoError(
        f"the PKCS#11 token {session.token.label!r} offers neither CKM_AES_GCM nor CKM_AES_CBC_PAD with "
        "CKM_SHA256_HMAC: it cannot hold the master key"
    )


class _TokenKey(Protocol):
    """What is used of a secret key object in the token (python-pkcs11's mixins, by capability)."""

    @property
    def key_length(self) -> int: ...

    def __getitem__(self, attribute: Attribute) -> Any: ...

    def encrypt(self, data: bytes, **kwargs: Any) -> bytes: ...

    def decrypt(self, data: bytes, **kwargs: Any) -> bytes: ...

    def sign(self, data: bytes, **kwargs: Any) -> bytes: ...

    def verify(self, data: bytes, signature: bytes, **kwargs: Any) -> bool: ...


def _find(session: pkcs11.Session, key_type: KeyType, label: str) -> _TokenKey | None:
    try:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=key_type, label=label)
    except p11.NoSuchKey:
        return None
    except p11.MultipleObjectsReturned:
        raise CryptoError(
            f"several {key_type.name} keys are labelled {label!r} in the token: labels must be unique"
        ) from None
    return cast(_TokenKey, key)


def _checked(key: _TokenKey, label: str) -> _TokenKey:
    """A key whose value could be read out of the token is not a master key in an HSM."""
    if not key[Attribute.SENSITIVE]:
        raise CryptoError(f"the token's key {label!r} is not SENSITIVE (its value can be read out): create it again")
    if key[Attribute.EXTRACTABLE]:
        log.warning("the token's key %r is EXTRACTABLE: it can leave the HSM wrapped by another key", label)
    return key


@dataclass(frozen=True, slots=True)
class _Keys:
    session: pkcs11.Session
    encryption: _TokenKey
    mac: _TokenKey | None


class Pkcs11KeyEncryptionKey:
    """``KeyEncryptionKey`` backed by an AES-256 key in a PKCS#11 token (see the module docstring)."""

    def __init__(self, module: str, token_label: str, pin: str, key_label: str, *, scheme: str | None = None) -> None:
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin
        self.kek_id = kek_id_for(token_label, key_label)
        self._keys: _Keys | None = None
        # The scheme of new wraps: GCM when the token offers it (or the one asked for). Fails now,
        # at start, when the token, the PIN or the key is wrong.
        self.scheme = self._call(lambda keys: _supported_scheme(keys.session, scheme))
        if self.scheme == ETM:
            self._call(lambda keys: self._mac_key(keys))

    def __repr__(self) -> str:
        return f"Pkcs11KeyEncryptionKey(token={self.token_label!r}, key={self.key_label!r}, kek_id={self.kek_id})"

    @property
    def prefix(self) -> str:
        return PREFIXES[self.scheme]

    def wrap(self, kid: str, material: bytes) -> str:
        aad = _aad(kid)
        if self.scheme == GCM:
            iv = secrets.token_bytes(_GCM_IV)
            sealed = self._call(lambda k: k.encryption.encrypt(material, mechanism=Mechanism.AES_GCM,
                                                               mechanism_param=GCMParams(iv, aad, _GCM_TAG * 8)))
            payload = iv + sealed
        else:
            iv = secrets.token_bytes(_CBC_IV)
            ciphertext = self._call(lambda k: k.encryption.encrypt(material, mechanism=Mechanism.AES_CBC_PAD,
                                                                   mechanism_param=iv))
            mac = self._call(lambda k: self._mac_key(k).sign(_mac_input(aad, iv, ciphertext),
                                                             mechanism=Mechanism.SHA256_HMAC))
            payload = iv + ciphertext + mac
        return f"{self.prefix}:{self.kek_id}:{base64.b64encode(payload).decode()}"

    def unwrap(self, kid: str, wrapped: str) -> bytes:
        prefix, kek_id, payload = _split(wrapped)
        if prefix == "mk1":
            raise CryptoError(
                f"managed key {kid} is wrapped by the file master key (MASTER_KEY or data_dir/master.key), not by "
                f"the HSM: move the keys with `python -m bff.keys rewrap` (the file master key configured)"
            )
        scheme = _SCHEME_OF_PREFIX.get(prefix)
        if scheme is None or kek_id != self.kek_id:
            raise CryptoError(
                f"managed key {kid} was wrapped by {prefix} key {kek_id}, not by the HSM key configured "
                f"({self.kek_id}: token {self.token_label!r}, key {self.key_label!r})"
            )
        try:
            raw = base64.b64decode(payload, validate=True)
        except ValueError:
            raise CryptoError(f"managed key {kid} does not open: its wrapped value is damaged") from None
        aad = _aad(kid)
        if scheme == GCM:
            if len(raw) < _GCM_IV + _GCM_TAG:
                raise CryptoError(f"managed key {kid} does not open: its wrapped value is damaged")
            iv, sealed = raw[:_GCM_IV], raw[_GCM_IV:]
            return self._opened(kid, lambda k: k.encryption.decrypt(sealed, mechanism=Mechanism.AES_GCM,
                                                                    mechanism_param=GCMParams(iv, aad, _GCM_TAG * 8)))
        if len(raw) < _CBC_IV + 16 + _MAC:
            raise CryptoError(f"managed key {kid} does not open: its wrapped value is damaged")
        iv, ciphertext, mac = raw[:_CBC_IV], raw[_CBC_IV:-_MAC], raw[-_MAC:]
        authentic = self._opened(kid, lambda k: self._mac_key(k).verify(_mac_input(aad, iv, ciphertext), mac,
                                                                        mechanism=Mechanism.SHA256_HMAC))
        if not authentic:
            raise CryptoError(f"managed key {kid} does not open: tampered, or wrapped under another key id")
        return self._opened(kid, lambda k: k.encryption.decrypt(ciphertext, mechanism=Mechanism.AES_CBC_PAD,
                                                                mechanism_param=iv))

    def _opened(self, kid: str, operation: Callable[[_Keys], _T]) -> _T:
        try:
            return self._call(operation)
        except CryptoError:
            raise
        except p11.PKCS11Error as exc:
            # A GCM tag that does not verify is CKR_ENCRYPTED_DATA_INVALID on most tokens and
            # CKR_GENERAL_ERROR on SoftHSM: either way the value does not open.
            raise CryptoError(
                f"managed key {kid} does not open: tampered, or wrapped under another key id ({type(exc).__name__})"
            ) from None

    def _mac_key(self, keys: _Keys) -> _TokenKey:
        if keys.mac is None:
            label = self.key_label + MAC_LABEL_SUFFIX
            raise CryptoError(
                f"the PKCS#11 token {self.token_label!r} has no HMAC key {label!r}, which {ETM} needs "
                "(`python -m bff.keys hsm-init` creates it on a token without CKM_AES_GCM)"
            )
        return keys.mac

    def _load(self) -> _Keys:
        session = _session(self.module, self.token_label, self._pin)
        if self._keys is not None and self._keys.session is session:
            return self._keys
        encryption = _find(session, KeyType.AES, self.key_label)
        if encryption is None:
            raise CryptoError(
                f"the PKCS#11 token {self.token_label!r} has no AES key labelled {self.key_label!r}: "
                "create it with `python -m bff.keys hsm-init`"
            )
        if encryption.key_length != 256:
            raise CryptoError(f"the token's key {self.key_label!r} is AES-{encryption.key_length}, not AES-256")
        mac = _find(session, KeyType.GENERIC_SECRET, self.key_label + MAC_LABEL_SUFFIX)
        self._keys = _Keys(session, _checked(encryption, self.key_label),
                           None if mac is None else _checked(mac, self.key_label + MAC_LABEL_SUFFIX))
        return self._keys

    def _call(self, operation: Callable[[_Keys], _T]) -> _T:
        with _lock:
            keys = self._load()
            try:
                return operation(keys)
            except _SESSION_LOST as exc:
                log.warning("PKCS#11 session on token %r lost (%s): opening a new one",
                            self.token_label, type(exc).__name__)
                _forget_session(self.module, self.token_label, keys.session)
                self._keys = None
            try:
                return operation(self._load())
            except _SESSION_LOST as exc:
                raise CryptoError(
                    f"the PKCS#11 token {self.token_label!r} is unreachable ({type(exc).__name__})"
                ) from None


def _aad(kid: str) -> bytes:
    return f"managed-key:{kid}".encode()


def _mac_input(aad: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    return PREFIXES[ETM].encode() + b"\0" + struct.pack(">I", len(aad)) + aad + iv + ciphertext


def _split(wrapped: str) -> tuple[str, str, str]:
    parts = wrapped.split(":", 2)
    if len(parts) != 3:
        raise CryptoError("a wrapped managed key is not <scheme>:<kek id>:<payload>")
    return parts[0], parts[1], parts[2]


def create_key(module: str, token_label: str, pin: str, key_label: str, *, scheme: str | None = None) -> list[str]:
    """Creates the master key in the token if it is missing (and, when the token needs the
    encrypt-then-MAC scheme, its HMAC key). Returns the labels of the keys created (none when they
    were there). The keys are token objects, PRIVATE, SENSITIVE and not EXTRACTABLE."""
    session = _session(module, token_label, pin)  # logs in (a login serves every session of the process)
    chosen = _supported_scheme(session, scheme)
    wanted = [(KeyType.AES, key_label, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)]
    if chosen == ETM:
        wanted.append((KeyType.GENERIC_SECRET, key_label + MAC_LABEL_SUFFIX, MechanismFlag.SIGN | MechanismFlag.VERIFY))
    created = []
    with _lock:
        for key_type, label, capabilities in wanted:
            if _find(session, key_type, label) is not None:
                continue
            with session.token.open(rw=True) as rw:  # no PIN: the process is logged in already
                rw.generate_key(
                    key_type,
                    256,
                    label=label,
                    store=True,
                    capabilities=capabilities,
                    template={
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.MODIFIABLE: False,
                    },
                )
            created.append(label)
    return created


@dataclass(frozen=True, slots=True)
class RewrapReport:
    rewrapped: list[str]
    already: list[str]
    retired: int


def _kek_of(wrapped: str) -> str:
    return wrapped.split(":", 2)[1] if wrapped.count(":") >= 2 else ""


async def rewrap(db: Database, old: KeyEncryptionKey, new: KeyEncryptionKey) -> RewrapReport:
    """Moves every managed key from ``old`` to ``new`` (e.g. the file master key to the HSM) in one
    transaction: each row is unwrapped with ``old``, wrapped with ``new`` and checked to unwrap
    again; a row that does not open rolls the whole move back. Rows already wrapped by ``new`` are
    left as they are, so running it twice is harmless; retired rows hold no material."""
    rewrapped: list[str] = []
    already: list[str] = []
    retired = 0
    async with db.writing() as session:
        rows = (await session.execute(select(ManagedKey).order_by(col(ManagedKey.kid)))).scalars().all()
        for row in rows:
            if not row.wrapped:
                retired += 1
                continue
            if _kek_of(row.wrapped) == new.kek_id:
                already.append(row.kid)
                continue
            material = old.unwrap(row.kid, row.wrapped)
            wrapped = new.wrap(row.kid, material)
            if new.unwrap(row.kid, wrapped) != material:
                raise CryptoError(f"managed key {row.kid} did not survive rewrapping: nothing was changed")
            row.wrapped = wrapped
            rewrapped.append(row.kid)
    return RewrapReport(rewrapped, already, retired)
