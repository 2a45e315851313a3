"""Channel profiles: who each front end serves, how it logs in, and the operations it sends.

Each channel is a folder next to this module holding ``profile.toml`` and its ``.graphql``
documents, one named operation per file (``HomePage.graphql`` holds ``query HomePage``) plus
shared fragment files. They are data: the BFF reads them (persisted operations, per-channel
rules) instead of branching on a channel's name, and front-end developers read them as the
contract of their app.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from graphql import FragmentDefinitionNode, FragmentSpreadNode, Node, parse, visit
from graphql.language import Visitor

ROOT = Path(__file__).parent
PROFILE = "profile.toml"


class ProfileError(ValueError):
    """A profile or document is malformed: a deployment mistake, reported with the file at fault."""


@dataclass(frozen=True, slots=True)
class Login:
    mutation: str
    """The schema's login mutation, e.g. ``loginWithWechat``."""
    operation: str
    """The channel's document that calls it."""
    session_channel: str
    """The channel the BFF records on the session (``WECHAT``, ``ELDERLY``, ``DOCTOR_H5``, ...); the
    front end sends it as the login input's ``channel``."""
    provider: str
    """Who proves the user's identity: ``WECHAT``, ``ALIPAY`` or ``PASSWORD``."""


@dataclass(frozen=True, slots=True)
class Presentation:
    """How a front end adapts its UI; today only the elderly mode (适老化) sets one."""

    mode: str
    font_scale: float
    suggest_from_age: int | None
    note: str


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    channel: str
    display_name: str
    host: str
    roles: tuple[str, ...]
    login: Login
    subscription_protocol: str | None
    operations: tuple[str, ...]
    fragments: tuple[str, ...]
    presentation: Presentation | None
    directory: Path
    borrows_from: Path | None = None
    """Another channel's folder supplying the documents this one does not write itself (the same
    flows in another app: Alipay sends WeChat's documents, with its own login)."""
    payment_channel: str | None = None
    """How this front end's patients pay (``WECHAT_PAY``, ``ALIPAY``): the channel their app opens
    (wx.requestPayment, my.tradePay); None for front ends that take no money."""

    def document_path(self, name: str) -> Path:
        return self.file_path(f"{name}.graphql")

    def file_path(self, file: str) -> Path:
        own = self.directory / file
        if own.is_file() or self.borrows_from is None:
            return own
        return self.borrows_from / file


def load_profiles(root: Path = ROOT) -> dict[str, ChannelProfile]:
    """Every ``<channel>/profile.toml`` under ``root``, by channel name."""
    profiles: dict[str, ChannelProfile] = {}
    for path in sorted(root.glob(f"*/{PROFILE}")):
        profile = _profile(path)
        if profile.channel != path.parent.name:
            raise ProfileError(f"{path}: channel {profile.channel!r} must match its folder {path.parent.name!r}")
        profiles[profile.channel] = profile
    return profiles


def operation(channel: str, name: str) -> str:
    """The complete document of one of ``channel``'s operations: the operation's file followed by
    the fragments it spreads (directly or through other fragments), ready to send.

    Raises ``KeyError`` when the channel does not exist or does not list the operation.
    """
    return _operation(ROOT, channel, name)


@cache
def _operation(root: Path, channel: str, name: str) -> str:
    profile = _cached_profiles(root)[channel]
    if name not in profile.operations:
        raise KeyError(f"channel {channel!r} has no operation {name!r}")
    path = profile.document_path(name)
    text = path.read_text(encoding="utf-8")
    needed = _spread_names(parse(text))
    available = _fragments(root, channel)
    included: list[str] = []
    pending = sorted(needed)
    seen: set[str] = set()
    while pending:
        fragment = pending.pop(0)
        if fragment in seen:
            continue
        if fragment not in available:
            raise ProfileError(f"{path}: fragment {fragment!r} is not defined in {channel}'s fragment files")
        seen.add(fragment)
        body, spreads = available[fragment]
        included.append(body)
        pending.extend(sorted(spreads - seen))
    return "\n\n".join([text.rstrip(), *included]) + "\n"


@cache
def _cached_profiles(root: Path) -> Mapping[str, ChannelProfile]:
    return load_profiles(root)


@cache
def _fragments(root: Path, channel: str) -> Mapping[str, tuple[str, frozenset[str]]]:
    """Fragment name → (its source text, the fragments it spreads), over the channel's fragment files."""
    profile = _cached_profiles(root)[channel]
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for file in profile.fragments:
        path = profile.file_path(file)
        text = path.read_text(encoding="utf-8")
        for definition in parse(text).definitions:
            if not isinstance(definition, FragmentDefinitionNode):
                raise ProfileError(f"{path}: fragment files hold fragments only")
            fragment = definition.name.value
            if fragment in found:
                raise ProfileError(f"{path}: fragment {fragment!r} is defined twice")
            assert definition.loc is not None
            found[fragment] = (text[definition.loc.start : definition.loc.end], frozenset(_spread_names(definition)))
    return found


class _SpreadCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _spread_names(node: Node) -> set[str]:
    collector = _SpreadCollector()
    visit(node, collector)
    return collector.names


def _profile(path: Path) -> ChannelProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        login = data["login"]
        documents = data["documents"]
        presentation = data.get("presentation")
        return ChannelProfile(
            channel=_text(data, "channel"),
            display_name=_text(data, "display_name"),
            host=_text(data, "host"),
            roles=tuple(_texts(data, "roles")),
            login=Login(
                mutation=_text(login, "mutation"), operation=_text(login, "operation"),
                session_channel=_text(login, "session_channel"),
                provider=_text(login, "provider"),
            ),
            subscription_protocol=data.get("subscriptions", {}).get("protocol"),
            operations=tuple(_texts(documents, "operations")),
            fragments=tuple(_texts(documents, "fragments", required=False)),
            presentation=None if presentation is None else Presentation(
                mode=_text(presentation, "mode"),
                font_scale=float(presentation.get("font_scale", 1.0)),
                suggest_from_age=presentation.get("suggest_from_age"),
                note=str(presentation.get("note", "")),
            ),
            directory=path.parent,
            borrows_from=path.parent.parent / documents["borrow_from"] if "borrow_from" in documents else None,
            payment_channel=data.get("payment", {}).get("channel"),
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: {exc!r}") from exc


def _text(table: Mapping[str, Any], key: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


def _texts(table: Mapping[str, Any], key: str, *, required: bool = True) -> list[str]:
    value = table[key] if required else table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{key} must be a list of non-empty strings")
    return value

