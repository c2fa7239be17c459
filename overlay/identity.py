"""Who this node is across runs: a random key and its folder name, kept in the state folder.

The name must stay stable across runs (it names the folder every peer keeps for us), so it is
chosen once and stored; a later `--name` replaces it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"


class IdentityError(Exception):
    """The state folder holds an identity this node cannot use; fix or remove identity.json."""


@dataclass(frozen=True)
class Identity:
    """The node's ring key (random, 32 hex digits) and its folder name."""

    key: str
    name: str


def default_name(host: str, port: int, default_port: int) -> str:
    """The original named a host by its address; add the port when it is not the default, so
    several nodes on one machine get different folders."""
    return host if port == default_port else f"{host}-{port}"


def load_or_create(state_dir: Path, name: str | None, fallback_name: str) -> Identity:
    """Read the stored identity, or make one; `name` (from --name) overrides the stored name."""
    path = state_dir / IDENTITY_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read {path}: {exc}") from None
        if isinstance(loaded, dict):
            stored = {k: v for k, v in loaded.items() if isinstance(v, str)}
    key = stored.get("key") or secrets.token_hex(16)
    chosen = name or stored.get("name") or fallback_name
    identity = Identity(key=key, name=chosen)
    if stored.get("key") != key or stored.get("name") != chosen:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "name": chosen}), encoding="utf-8")
        os.replace(tmp, path)
        log.info("identity %s named %r stored in %s", key, chosen, path)
    return identity
