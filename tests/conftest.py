"""Shared fixtures: everything binds 127.0.0.1 on port 0, folders come from tmp_path."""

from __future__ import annotations

import logging

logging.getLogger("kademlia").setLevel(logging.WARNING)
logging.getLogger("rpcudp").setLevel(logging.WARNING)
