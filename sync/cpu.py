"""How busy this host's processors were between two moments, for the swarm's seating rule.

A block download seats partial holders (other receivers of the same file) so that they trade
blocks among themselves instead of all asking the owner. That pays where links are the limit:
each partial holder adds an uplink. It costs where the processors are the limit: every seat is
one more connection with its own TLS, thread and "which blocks have you now" asks, on both
hosts, and the bytes come no faster for it. Measured with 8 nodes on 2 cores (loopback, every
core busy): seating partial holders took a 256 MiB file 1.14-1.20x as long as the ring alone
and 20-25 % more CPU; over 100 Mbit/s links, 0.33x as long. So the swarm seats partial holders
only while the host's processors had time to spare (`busy_share` under `BUSY`), measured over
a short look before the download starts and over the pause between two of its lookups
(`sync/swarm.py`, `LOOK` and `_recruit`). Where hosts share processors, as in the lab (9 hosts
on 2 cores), the cores are busy once receivers trade, and one that starts then trades less;
32 MiB to 8 receivers over 100 Mbit/s still took 6.8-7.4 s (7.6-7.8 s with partial holders
always seated, 23.1 s with the ring alone). On a LAN each host has processors of its own.

Idle and I/O wait count as spare, as in `psutil.cpu_percent`: a host waiting on its disk is not
short of CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import psutil

BUSY = 0.9
"""The share of all processors' time, busy, from which this host counts as CPU-bound: a
download seats no new partial holder after a pause as busy as that. Loopback runs where every
core is busy measure 0.97-1.00; downloads limited by their links measured 0.1-0.7 on the same
host before they seated partial holders."""


class CpuSample(NamedTuple):
    """Seconds of processor time since boot, summed over every processor: busy, and in all."""

    busy: float
    total: float


def sample() -> CpuSample:
    """The host's processor times now (one read of /proc/stat on Linux; microseconds)."""
    times = psutil.cpu_times()
    # on Linux, guest time is counted in user time already (psutil.cpu_percent does the same)
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return CpuSample(total - idle, total)


def busy_share(before: CpuSample, after: CpuSample) -> float:
    """The share (0 to 1) of processor time between the two samples that was busy; 0 when no
    time passed between them (nothing measured: nothing to hold a seat back for)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (after.busy - before.busy) / total))
