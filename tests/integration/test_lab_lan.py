"""A real LAN on one machine: six `python3 Main.py` with no --peer and no --port find each other.

Each host is a network namespace of our own on one bridge (overlay/lab/net.py): real broadcast,
real ARP, nothing outside the lab touched. Run with `pytest -m lab` (as root).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable

import pytest

from tests.integration.lab_world import World, wait_until, world

__all__ = ["world"]

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(180)]

SIZES = (0, 1, 4096, 300_000, 1_000_003)

Worlds = Callable[..., World]


class TestDiscoveryFormsOneRing:
    def test_six_hosts_started_one_after_another(
        self, world: Worlds, record_property: Callable[[str, object], None]
    ) -> None:
        w = world(6)
        for host in w.hosts:
            w.share_samples(host, SIZES)
        start = time.monotonic()
        for host in w.hosts:
            w.start(host)
        w.wait_ring(w.nodes, 6)
        ring = time.monotonic() - start
        w.wait_converged(w.nodes)
        total = time.monotonic() - start
        record_property("seconds_to_one_ring", round(ring, 2))
        record_property("seconds_to_converge", round(total, 2))
        print(f"\n6 hosts one after another: one ring {ring:.2f} s, all files {total:.2f} s")
        assert w.nodes[0].ring() == [h.address for h in w.hosts], "admitted in order of start"

    def test_six_hosts_started_at_the_same_instant(
        self, world: Worlds, record_property: Callable[[str, object], None]
    ) -> None:
        w = world(6)
        for host in w.hosts:
            w.share_samples(host, SIZES[:3])
        start = time.monotonic()
        nodes = [w.start(host, wait=False) for host in w.hosts]
        for node in nodes:
            node.wait_prompt()
        w.wait_ring(nodes, 6)
        ring = time.monotonic() - start
        files = w.wait_converged(nodes)
        record_property("seconds_to_one_ring", round(ring, 2))
        print(f"\n6 hosts at once: one ring {ring:.2f} s, all files {ring + files:.2f} s")
        time.sleep(3)  # the split must not come back: look again a few heartbeats later
        assert w.one_ring(nodes, 6)


class TestArpScan:
    def test_a_host_whose_beacons_are_filtered_joins_through_the_arp_table(
        self, world: Worlds
    ) -> None:
        """The beacon is blocked on host 4's cable; it has talked to the others (so the kernel
        lists them as neighbours), and its ARP scan at start must find the ring."""
        w = world(4, "nft")
        for host in w.hosts:
            w.share_samples(host, SIZES[:3])
        quiet = w.hosts[3]
        assert w.lab.hub is not None
        w.lab.hub.run(["nft", "-f", "-"], stdin=(
            "table bridge lab_beacon {\n"
            "  chain forward { type filter hook forward priority 0; policy accept;\n"
            '    iifname "p4" udp dport 8090 counter drop\n'
            '    oifname "p4" udp dport 8090 counter drop\n'
            "  }\n"
            "}\n"
        ))  # fmt: skip
        first = [w.start(host) for host in w.hosts[:3]]
        w.wait_ring(first, 3)
        poke = (
            "import socket\n"
            "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
            + "".join(f"    s.sendto(b'hi', ('{h.address}', 9))\n" for h in w.hosts[:3])
        )
        quiet.run([sys.executable, "-c", poke])
        wait_until(
            lambda: all(h.address in quiet.run(["cat", "/proc/net/arp"]) for h in w.hosts[:3]),
            5, "the kernel lists the neighbours",
        )  # fmt: skip
        w.start(quiet)
        w.wait_ring(w.nodes, 4)
        w.wait_converged(w.nodes)
        blocked = w.lab.hub.run(["nft", "list", "table", "bridge", "lab_beacon"])
        assert "packets 0 " not in blocked, f"beacons were not blocked both ways:\n{blocked}"


class TestOneInterface:
    def test_a_host_on_two_lans_beacons_and_contacts_only_on_its_own(self, world: Worlds) -> None:
        """Host 1 also has eth1 on a second LAN (10.77.1.0/24) where another node runs and
        beacons, and which its ARP table lists. Its node discovers on eth0 (the default
        route's): nothing of ours may leave through eth1, and the outsider stays alone."""
        w = world(3, "nft")
        w.lab.add_bridge("br1")
        outsider = w.lab.add_host(subnet="10.77.1", bridge="br1")
        port = w.lab.plug(w.hosts[0], "br1", "eth1", "10.77.1.1")
        assert w.lab.hub is not None
        w.lab.hub.run(["nft", "-f", "-"], stdin=(
            "table bridge lab_watch {\n"
            "  chain forward { type filter hook forward priority 0; policy accept;\n"
            f'    iifname "{port}" udp dport 9 counter\n'
            f'    iifname "{port}" udp dport 8090 counter\n'
            f'    iifname "{port}" tcp dport 8091 counter\n'
            "  }\n"
            "}\n"
        ))  # fmt: skip
        lan = w.hosts[:3]
        lan[0].run([sys.executable, "-c", (
            "import socket\n"
            "with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
            f"    s.sendto(b'hi', ('{outsider.address}', 9))\n"
        )])  # fmt: skip
        wait_until(
            lambda: f"{outsider.address} dev eth1 lladdr" in lan[0].run(["ip", "neigh"]),
            5, "host 1's kernel lists the outsider as a neighbour on eth1",
        )  # fmt: skip
        alone = w.start(outsider)
        nodes = [w.start(host) for host in lan]
        w.wait_ring(nodes, 3)
        time.sleep(2.5)  # beacons repeat every 2 s: give the wrong interface a chance to be used
        assert len(alone.ring()) == 1
        assert w.one_ring(nodes, 3)
        counts = re.findall(r"dport (\d+) counter packets (\d+)", w.lab.hub.run(
            ["nft", "list", "table", "bridge", "lab_watch"]
        ))  # fmt: skip
        assert dict(counts) == {"9": "1", "8090": "0", "8091": "0"}, counts
