"""Who this node is across runs: its ring key and its folder name, kept in the state folder.

The name must stay stable across runs (it names the folder every peer keeps for us), so it is
chosen once and stored; a later `--name` replaces it. A new host is named after its host name
(`base_name`): an address would change with the network, and a host started with no network
would be `127.0.0.1` for ever, like every other host started so. The key is the node's public
key in hex (`overlay/credentials.py`); identity.json records it beside the name. An
identity.json from before node keys holds a random key instead: it is replaced by the node
key, the name is kept.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ring.roster import fingerprint
from sync.errors import UnsafePath
from sync.paths import check_owner

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"

MAX_HOST_NAME = 63
"""Characters of the host name kept in a default name (a DNS label's limit)."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
"""Host names that every machine answers to: no name at all for telling hosts apart."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class IdentityError(Exception):
    """The state folder holds an identity this node cannot use; fix or remove identity.json."""


@dataclass(frozen=True)
class Identity:
    """The node's ring key (its node public key, 64 hex digits) and its folder name."""

    key: str
    name: str


def is_loopback(text: str) -> bool:
    """Whether `text` names the loopback (an address in 127.0.0.0/8 or ::1, or "localhost")."""
    if text.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def name_from_host(hostname: str) -> str | None:
    """`hostname` as a folder name: runs of characters other than letters, digits, ".", "_"
    and "-" become one "-", leading dots and dashes go, at most MAX_HOST_NAME characters are
    kept; None when nothing usable is left or it names the loopback."""
    name = _UNSAFE.sub("-", hostname).lstrip(".-")[:MAX_HOST_NAME].rstrip(".-")
    if not name or is_loopback(hostname) or is_loopback(name):
        return None
    try:
        return check_owner(name)
    except UnsafePath:
        return None


def base_name(hostname: str, address: str, key: str) -> str:
    """What a new host is called: its host name, else its address unless that is a loopback
    one, else `host-` and its key's fingerprint; never a loopback address.

    Args:
        hostname: `socket.gethostname()`.
        address: the address the node advertises.
        key: the node key (hex), whose fingerprint tells nameless hosts apart.
    """
    return (
        name_from_host(hostname)
        or (None if is_loopback(address) else name_from_host(address))
        or f"host-{fingerprint(key)}"
    )


def default_name(host: str, port: int, default_port: int) -> str:
    """`host` (from `base_name`), with the port added when it is not the default, so several
    nodes on one machine get different folders."""
    return host if port == default_port else f"{host}-{port}"


def load_or_create(state_dir: Path, name: str | None, fallback_name: str, key: str) -> Identity:
    """Read the stored identity, or make one; `name` (from --name) overrides the stored name.

    Args:
        state_dir: the node's state folder.
        name: --name, if given.
        fallback_name: the name when neither --name nor a stored name is there.
        key: the node's public key in hex (`Credentials.key`); it replaces any other stored key.

    Raises:
        IdentityError: identity.json is there but unreadable.
    """
    path = state_dir / IDENTITY_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read {path}: {exc}") from None
        if isinstance(loaded, dict):
            stored = {k: v for k, v in loaded.items() if isinstance(v, str)}
    if stored.get("key") not in (None, key):
        log.info("identity %s replaced by the node key %s", stored["key"], key)
    chosen = name or stored.get("name") or fallback_name
    identity = Identity(key=key, name=chosen)
    if stored.get("key") != key or stored.get("name") != chosen:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "name": chosen}), encoding="utf-8")
        os.replace(tmp, path)
        log.info("identity %s named %r stored in %s", key, chosen, path)
    return identity


def name_taken_text(name: str, key: str, where: tuple[str, int]) -> str:
    """What the prompt says when a ring's leader refused this node's name (another host holds
    it): the name, where, and a --name to restart with (the name plus this key's fingerprint,
    free unless that host took it too)."""
    host, port = where
    return (
        f"! the ring at {host}:{port} refused the name {name!r}: another host holds it; "
        f"this host stays out of that ring. Restart with a name of its own, e.g. "
        f"--name {name}-{fingerprint(key)[:4]}"
    )
