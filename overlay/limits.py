"""The process's own limits, raised where a node needs more than the defaults give.

A node holds a descriptor per connection, per download and per watched folder; the soft limit
a shell hands out (often 1,024) is far below what the kernel allows (the hard limit), and 1,100
idle connections once used it up. So a node raises its soft limit to the hard limit when it
starts; the door then sizes its connection table from the raised limit
(`ring/wire/slots.py`, `Caps.for_descriptors`).
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (logged once at INFO).

    Returns:
        The soft limit now in force (unchanged when the system refused the raise, or when the
        hard limit is unlimited: then the soft one is left as it is).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        log.info("open descriptors: %d allowed", soft)
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.info("open descriptors: %d allowed (raising to %d failed: %s)", soft, hard, exc)
        return soft
    log.info("open descriptors: raised from %d to %d", soft, hard)
    return hard
