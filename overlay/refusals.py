"""Telling the user that a ring refused this node's name, which the ring itself only logs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from overlay.identity import name_taken_text
from ring.service import RingService

REFUSAL_CHECK = 1.0
"""Seconds between looks at the addresses whose leader refused this node's name."""


async def watch_refusals(ring: RingService, tell: Callable[[str], None]) -> None:
    """Say at the prompt, once per ring, that its leader refused this node's name (the ring
    only logs it): otherwise two hosts named alike sit in two rings and nobody hears why."""
    told: set[tuple[str, int]] = set()
    while True:
        for where in sorted(ring.refused - told):
            told.add(where)
            tell(name_taken_text(ring.me.name, ring.me.key, where))
        await asyncio.sleep(REFUSAL_CHECK)
