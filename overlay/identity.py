"""Who this node is across runs: its ring key and its folder name, kept in the state folder.

The name must stay stable across runs (it names the folder every peer keeps for us), so it is
chosen once and stored; a later `--name` replaces it. The key is the node's public key in hex
(`overlay/credentials.py`); identity.json records it beside the name. An identity.json from
before node keys holds a random key instead: it is replaced by the node key, the name is kept.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"


class IdentityError(Exception):
    """The state folder holds an identity this node cannot use; fix or remove identity.json."""


@dataclass(frozen=True)
class Identity:
    """The node's ring key (its node public key, 64 hex digits) and its folder name."""

    key: str
    name: str


def default_name(host: str, port: int, default_port: int) -> str:
    """The original named a host by its address; add the port when it is not the default, so
    several nodes on one machine get different folders."""
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
