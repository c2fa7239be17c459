"""A soak on the lab LAN: everything at once, as a bad day on a real LAN would bring it.

Twelve `--dht` hosts share a few hundred small files and a few larger ones; while the larger
ones move, a quarter of the nodes die by kill -9 (node 0 among them), two cables lose 10% of
their frames, and a thirteenth host floods one node with idle connections (far more than the
node keeps from one address) and garbage datagrams. At the end every survivor holds every file
of every surviving owner byte-exact; the settled files of the dead owners stay, none torn. A
member's PING to the flooded node is timed all along, and its median and p99 are printed (not
asserted: the machine is shared), beside the same for a node nobody floods, which tells the
flood's cost from that of a machine busy with twelve nodes. Run with `pytest -m lab` (as root).
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from overlay.lab.net import Host
from overlay.lab.node import ROOT, LabNode
from tests.integration.lab_flood import PROBE_TIMEOUT
from tests.integration.lab_world import World, wait_until, world
from tests.sync_harness import tree

__all__ = ["world"]

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(300)]

Worlds = Callable[..., World]

NODES = 12
FLOOD_CONNECTIONS = 1100
"""Idle connections the flooding host keeps open: many times a node's share per address (64)."""
FLOOD_DATAGRAMS = 2000
"""Garbage datagrams per second at the flooded node."""


def ring_position(node: LabNode) -> int:
    match = re.search(r"this node: id (\d+)", node.command("peers"))
    assert match, node.output[-500:]
    return int(match.group(1))


def in_host(host: Host, *args: str) -> subprocess.Popen[str]:
    """`python3 -m tests.integration.lab_flood ARGS` inside lab host `host`."""
    argv = host.command([sys.executable, "-m", "tests.integration.lab_flood", *args])
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def latencies(waits: list[float]) -> str:
    """Count, median and p99 of a probe's waits (a failure counts as the probe's timeout)."""
    p99 = statistics.quantiles(waits, n=100, method="inclusive")[98] if len(waits) > 1 else waits[0]
    failed = sum(1 for t in waits if t >= PROBE_TIMEOUT)
    return (
        f"{len(waits)} requests, median {statistics.median(waits) * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, {failed} unanswered"
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """End a program started by `in_host`; what it printed."""
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    return out


class TestSoak:
    def test_kills_loss_and_a_flood_at_once_every_survivor_converges(self, world: Worlds) -> None:
        w = world(NODES + 1, "nft")
        hosts, flooder = w.hosts[:NODES], NODES
        for i, host in enumerate(hosts):
            w.share(host, {f"small/{i}-{k}.txt": os.urandom(500 + 97 * k) for k in range(25)})
        nodes = [w.start(host, "--dht", wait=False) for host in hosts]
        for node in nodes:
            node.wait_prompt(60)
        w.wait_ring(nodes, NODES, timeout=60)
        w.wait_converged(nodes, timeout=90)
        settled = {owner: dict(files) for owner, files in w.expected.items()}

        by_position = {ring_position(node): node for node in nodes}
        target, prober, control = by_position[1], by_position[2], by_position[3]
        victims = [by_position[0], by_position[5], by_position[9]]
        survivors = [node for node in nodes if node not in victims]
        dead = {node.host.address for node in victims}
        key = str(w.base / "network.key")
        flood = in_host(
            w.hosts[flooder], "flood", target.host.address, "8091",
            str(FLOOD_CONNECTIONS), str(FLOOD_DATAGRAMS),
        )  # fmt: skip
        probe = in_host(prober.host, "probe", target.host.address, "8091", key)
        calm = in_host(prober.host, "probe", control.host.address, "8091", key)
        try:
            w.lab.set_loss(hosts[3], 10)
            w.lab.set_loss(hosts[7], 10)
            for host in hosts[::3]:
                w.share(host, {"large.bin": os.urandom(3_000_000)})
            for host in hosts[1::3]:
                w.share(host, {"medium.bin": os.urandom(1_000_000)})
            wait_until(
                lambda: any(
                    p.parent.name != n.host.address
                    for n in nodes for p in n.shared.glob("*/large.bin")
                ),
                30, "the first large file arrives somewhere",
            )  # fmt: skip
            for node in victims:
                node.kill()
            killed = time.monotonic()
            heal = w.wait_ring(survivors, len(survivors), timeout=60)
            live_owners = [o for o in w.expected if o not in dead]
            w.wait_converged(survivors, live_owners, timeout=120)
            converged = time.monotonic() - killed
        finally:
            waits = [float(line) for line in stop(probe).split()]
            calm_waits = [float(line) for line in stop(calm).split()]
            stop(flood)
        dropped = w.lab.dropped()

        for owner in dead:  # the dead owners' files: what was settled stays, nothing torn
            for node in survivors:
                have = tree(node.shared / owner)
                assert settled[owner].items() <= have.items(), (node.host.address, owner)
                torn = {p for p in have if have[p] != w.expected[owner].get(p)}
                assert not torn, f"{node.host.address} holds torn copies of {owner}: {torn}"
        assert target.proc.poll() is None, "the flooded node died"
        assert "too many open files" not in target.errors.lower()
        assert waits and calm_waits, "a probe timed nothing"
        print(
            f"\nsoak of {NODES}: one ring of {len(survivors)} {heal:.1f} s after the kill,"
            f" converged {converged:.1f} s after it; {dropped} frames lost on two cables"
        )
        print(f"member PING to the flooded node: {latencies(waits)}")
        print(f"member PING to a node not flooded: {latencies(calm_waits)}")
