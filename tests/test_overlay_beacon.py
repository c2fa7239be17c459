"""The discovery shell on real UDP sockets, all on 127.0.0.1: beacons, ARP scans, garbage."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import msgpack
import pytest

from overlay.announcement import (
    Announcement,
    Header,
    build_announcement,
    open_announcement,
    read_header,
)
from overlay.beacon import RENOTIFY, Discovery, read_arp_table
from overlay.discovery import Interface
from overlay.lab.net import Lab, LabError, missing_tools
from overlay.network_key import NetworkKey
from overlay.sealing import DatagramSeal
from tests.credentials import NETWORK
from tests.waiting import wait_for

LOOPBACK = Interface("lo", "127.0.0.1", IPv4Network("127.0.0.0/8"), "127.0.0.1")
ETH0 = Interface("eth0", "192.0.2.2", IPv4Network("192.0.2.0/24"), "192.0.2.255")

ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.10       0x1         0x2         52:54:00:12:34:56     *        eth0
192.0.2.11       0x1         0x0         00:00:00:00:00:00     *        eth0
192.0.2.16       0x1         0x0         52:54:00:12:34:5e     *        eth0
198.51.100.7     0x1         0x2         52:54:00:12:34:58     *        eth0
192.0.2.12       0x1         0x2         52:54:00:12:34:57     *        wlan0
192.0.2.13       0x1         0x2         52:54:00:12:34:59     *        eth0
"""

NEIGH = """\
192.0.2.10 lladdr 52:54:00:12:34:56 REACHABLE
192.0.2.11  FAILED
192.0.2.14  INCOMPLETE
198.51.100.7 lladdr 52:54:00:12:34:58 STALE
"""

PEER = ("127.0.0.2", 40000)

Calls = list[tuple[str, int]]

SENDER = DatagramSeal(NETWORK.beacon_key, "beacon")


def beacon_seal() -> DatagramSeal:
    """A member's beacon seal (each node has its own: its own replay cache)."""
    return DatagramSeal(NETWORK.beacon_key, "beacon")


def beacon(a: Announcement) -> bytes:
    """A member's beacon saying `a` (a new one at each call: a beacon is taken once)."""
    return build_announcement(a, Header(NETWORK.network_id), SENDER)


def parse(data: bytes) -> Announcement | None:
    read = read_header(data)
    if read is None or read[0].network_id != NETWORK.network_id:
        return None
    return open_announcement(data, read[1], beacon_seal())


def free_udp_ports(n: int) -> list[int]:
    """n distinct free UDP ports on 127.0.0.1, found by binding port 0."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_discovery(key: str, port: int, calls: Calls, **kw: Any) -> Discovery:
    """A Discovery on loopback only: binds 127.0.0.1, 'broadcasts' to 127.0.0.1, no real ARP."""
    kw.setdefault("read_arp", lambda: "")
    kw.setdefault("broadcast", "127.0.0.1")
    kw.setdefault("listen_host", "127.0.0.1")
    kw.setdefault("interval", 0.05)
    return Discovery(
        kw.pop("iface", LOOPBACK),
        seal=beacon_seal(),
        network_id=NETWORK.network_id,
        key=key,
        name=f"node-{key}",
        port=port,
        on_peer=lambda host, p: calls.append((host, p)),
        ring_id=lambda: "ring-1",
        **kw,
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Discovery, Discovery, Calls, Calls]]:
    """Two nodes, each sending its beacon to the other's listen port."""
    pa, pb = free_udp_ports(2)
    calls_a: Calls = []
    calls_b: Calls = []
    a = loopback_discovery("aaaa", 9001, calls_a, beacon_port=pa, send_port=pb)
    b = loopback_discovery("bbbb", 9002, calls_b, beacon_port=pb, send_port=pa)
    await a.start()
    await b.start()
    yield a, b, calls_a, calls_b
    await a.stop()
    await b.stop()


class TestBeaconPair:
    async def test_two_nodes_find_each_other_once(
        self, pair: tuple[Discovery, Discovery, Calls, Calls]
    ) -> None:
        a, b, calls_a, calls_b = pair
        await wait_for(lambda: calls_a != [] and calls_b != [])
        await wait_for(lambda: a.stats["received"] >= 5 and b.stats["received"] >= 5)
        assert calls_a == [("127.0.0.1", 9002)]
        assert calls_b == [("127.0.0.1", 9001)]
        (peer,) = a.peers()
        assert peer.announcement is not None
        assert (peer.announcement.key, peer.announcement.ring_id) == ("bbbb", "ring-1")

    async def test_garbage_is_dropped_and_the_listener_goes_on(
        self, pair: tuple[Discovery, Discovery, Calls, Calls]
    ) -> None:
        a, b, calls_a, _ = pair
        assert b.address is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"\x00" * 3, b"LSHB\x01\xc1", b"GET / HTTP/1.0\r\n\r\n", b"\xff" * 2000):
                s.sendto(junk, ("127.0.0.1", b.address[1]))
        await wait_for(lambda: b.stats["malformed"] == 4)
        seen = b.stats["received"]
        await wait_for(lambda: b.stats["received"] > seen + 2)
        assert b.stats["malformed"] == 4
        await wait_for(lambda: calls_a != [])

    async def test_a_failing_on_peer_does_not_stop_discovery(self) -> None:
        pa, pb = free_udp_ports(2)
        calls: Calls = []

        def explode(host: str, port: int) -> None:
            calls.append((host, port))
            raise RuntimeError("boom")

        a = loopback_discovery("aaaa", 9001, [], beacon_port=pa, send_port=pb)
        b = loopback_discovery("bbbb", 9002, [], beacon_port=pb, send_port=pa)
        b.on_peer = explode
        await a.start()
        await b.start()
        try:
            await wait_for(lambda: calls != [])
            seen = b.stats["received"]
            await wait_for(lambda: b.stats["received"] > seen + 2)
        finally:
            await a.stop()
            await b.stop()
        assert calls == [("127.0.0.1", 9001)]


class TestEarlyAnswer:
    async def test_a_late_starter_hears_back_within_a_round_trip_not_an_interval(self) -> None:
        pa, pb = free_udp_ports(2)
        calls_a: Calls = []
        calls_b: Calls = []
        a = loopback_discovery("aaaa", 9001, calls_a, beacon_port=pa, send_port=pb, interval=60.0)
        b = loopback_discovery("bbbb", 9002, calls_b, beacon_port=pb, send_port=pa, interval=60.0)

        def sent() -> int:
            return a.stats["sent"] + b.stats["sent"]

        await a.start()
        try:
            await wait_for(lambda: a.stats["sent"] == 1)  # lost: nobody listens on pb yet
            await b.start()
            await wait_for(lambda: calls_a != [] and calls_b != [], timeout=2.0)
            await wait_for(lambda: a.stats["received"] + b.stats["received"] == sent() - 1)
        finally:
            await a.stop()
            await b.stop()
        assert (calls_a, calls_b) == ([("127.0.0.1", 9002)], [("127.0.0.1", 9001)])
        assert sent() == 4, "each side answers a new peer once, then falls silent"

    async def test_answers_to_many_newcomers_at_once_are_one_beacon(self) -> None:
        node = loopback_discovery("me", 9001, [], beacon_port=0, interval=2.0)
        await node.start()
        try:
            await wait_for(lambda: node.stats["own"] == 1)
            for i in (1, 2, 3):
                node._on_datagram(beacon(Announcement(f"p{i}", "", "", 9100 + i)), PEER)
            assert node.stats["sent"] == 2, "the first newcomer is answered at once"
            await wait_for(lambda: node.stats["own"] == 3)
            assert node.stats["sent"] == 3, "the next two share one answer"
            node._on_datagram(beacon(Announcement("p1", "", "", 9101)), PEER)
            assert node.stats["sent"] == 3, "a peer already known gets no answer"
        finally:
            await node.stop()


class TestStrangersBeacons:
    """Issue 11: 25 broadcast beacons of a stranger made every node leave its ring for the
    stranger's. Now a beacon that is not a member's of this network changes nothing: no peer,
    no answer, nothing passed to the ring."""

    @pytest.mark.parametrize("kind", ["version 1", "forged", "another network", "replayed"])
    async def test_a_strangers_beacons_do_nothing(self, kind: str) -> None:
        calls: Calls = []
        node = loopback_discovery("me", 9001, calls, beacon_port=0, interval=60.0)
        await node.start()
        try:
            await wait_for(lambda: node.stats["own"] == 1)
            stranger = NetworkKey.generate()
            ann = Announcement("stranger", "ring-of-the-stranger", "s", 9666)
            if kind == "replayed":
                captured = beacon(Announcement("member", "", "m", 9100))
                node._on_datagram(captured, ("127.0.0.3", 40000))
                calls.clear()
            sent = node.stats["sent"]
            for _ in range(25):
                if kind == "version 1":
                    data = b"LSHB\x01" + msgpack.packb({"k": "stranger", "r": "x", "p": 9666})
                elif kind == "forged":
                    data = build_announcement(
                        ann, Header(NETWORK.network_id), DatagramSeal(stranger.beacon_key, "b")
                    )
                elif kind == "another network":
                    data = build_announcement(
                        ann, Header(stranger.network_id), DatagramSeal(stranger.beacon_key, "b")
                    )
                else:
                    data = captured
                node._on_datagram(data, PEER)
            assert calls == []
            assert node.stats["sent"] == sent, "not even an answer beacon"
            assert all(p.host != PEER[0] for p in node.peers())
        finally:
            await node.stop()
        expected = {"version 1": "malformed", "another network": "other network"}
        assert node.stats[expected.get(kind, "forged")] == 25


class TestOwnPackets:
    async def test_a_node_hearing_its_own_beacon_ignores_it(self) -> None:
        calls: Calls = []
        node = loopback_discovery("self", 9001, calls, beacon_port=0)
        await node.start()
        try:
            await wait_for(lambda: node.stats["own"] >= 3)
        finally:
            await node.stop()
        assert calls == []
        assert node.peers() == []

    async def test_beacons_go_to_the_interface_broadcast_and_nowhere_else(self) -> None:
        """No `broadcast` given: the target is the chosen interface's broadcast address (here
        loopback's, standing in), on the beacon port, and only there."""
        iface = Interface("lo", "127.0.0.1", IPv4Network("127.0.0.0/8"), "127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.settimeout(5)
            node = Discovery(
                iface, seal=beacon_seal(), network_id=NETWORK.network_id,
                key="me", name="me", port=9001, on_peer=lambda h, p: None,
                ring_id=lambda: "", beacon_port=0, listen_host="127.0.0.1",
                send_port=listener.getsockname()[1], read_arp=lambda: "",
            )  # fmt: skip
            assert node.broadcast == iface.broadcast
            await node.start()
            try:
                data = await asyncio.to_thread(listener.recv, 2048)
            finally:
                await node.stop()
        assert parse(data) == Announcement("me", "", "me", 9001)

    async def test_beacons_from_outside_the_subnet_are_ignored(self) -> None:
        ports = free_udp_ports(2)
        calls: Calls = []
        lan = loopback_discovery("lan", 9001, calls, iface=ETH0, beacon_port=ports[0])
        other = loopback_discovery("other", 9002, [], beacon_port=ports[1], send_port=ports[0])
        await lan.start()
        await other.start()
        try:
            await wait_for(lambda: lan.stats["foreign"] >= 3)
        finally:
            await lan.stop()
            await other.stop()
        assert calls == []


class TestIssueLostFirstContact:
    async def test_a_peer_still_beaconing_is_passed_on_again_within_seconds(self) -> None:
        """Under 10% loss a first contact that failed waited 30 s for the next one, and the
        lab's rings stayed split that long: now a visible peer is told again after RENOTIFY."""
        now = [0.0]
        calls: Calls = []
        node = loopback_discovery("me", 9001, calls, clock=lambda: now[0], interval=2.0)
        for t in (0.0, 2.0, RENOTIFY - 0.1, RENOTIFY, RENOTIFY + 2.0, 2 * RENOTIFY):
            now[0] = t
            node._on_datagram(beacon(Announcement("peer", "", "", 9100)), PEER)
        assert RENOTIFY <= 5.0
        assert calls == [(PEER[0], 9100)] * 3

    async def test_a_peer_that_stopped_beaconing_is_not_passed_on(self) -> None:
        now = [0.0]
        calls: Calls = []
        node = loopback_discovery("me", 9001, calls, clock=lambda: now[0], interval=2.0)
        node._on_datagram(beacon(Announcement("peer", "", "", 9100)), PEER)
        now[0] = 10 * RENOTIFY
        assert node.peers() == []
        assert calls == [(PEER[0], 9100)]


class TestArpScan:
    @pytest.mark.parametrize(
        ("table", "live"),
        [(ARP, ["192.0.2.10", "192.0.2.13"]), (NEIGH, ["192.0.2.10"])],
        ids=["proc", "ip-neigh"],
    )
    async def test_only_live_neighbours_inside_the_subnet_reach_on_peer(
        self, table: str, live: list[str]
    ) -> None:
        calls: Calls = []
        node = loopback_discovery("me", 8091, calls, iface=ETH0, read_arp=lambda: table)
        assert await node.scan_arp_once() == live
        assert calls == [(host, 8091) for host in live]
        assert await node.scan_arp_once() == live
        assert calls == [(host, 8091) for host in live]

    async def test_periodic_scans_never_pass_a_dead_or_foreign_address(self) -> None:
        calls: Calls = []
        reads: list[float] = []

        def read() -> str:
            reads.append(time.monotonic())
            return ARP

        node = loopback_discovery(
            "me", 8091, calls, iface=ETH0, beacon_port=0, read_arp=read,
            arp_interval=0.02, arp_port=8095, renotify=0.05,
        )  # fmt: skip
        await node.start()
        try:
            await wait_for(lambda: len(reads) >= 10)
        finally:
            await node.stop()
        assert {c for c in calls} == {("192.0.2.10", 8095), ("192.0.2.13", 8095)}
        assert calls[:2] == [("192.0.2.10", 8095), ("192.0.2.13", 8095)]

    async def test_an_unreadable_table_gives_nothing(self) -> None:
        def broken() -> str:
            raise PermissionError("no /proc here")

        calls: Calls = []
        node = loopback_discovery("me", 8091, calls, iface=ETH0, read_arp=broken)
        assert await node.scan_arp_once() == []
        assert calls == []

    def test_the_default_reader_reads_the_given_file(self, tmp_path: Path) -> None:
        path = tmp_path / "arp"
        path.write_text(ARP)
        assert read_arp_table("eth0", str(path)) == ARP


class TestLifecycle:
    async def test_stop_is_safe_before_start_and_twice(self) -> None:
        node = loopback_discovery("me", 8091, [], beacon_port=0)
        await node.stop()
        await node.start()
        assert node.address is not None and node.address[1] != 0
        await node.stop()
        await node.stop()

    async def test_nodes_on_one_host_share_the_beacon_port_and_all_hear_a_broadcast(self) -> None:
        """Loopback's own broadcast address: the one broadcast these tests may use."""
        (port,) = free_udp_ports(1)
        calls: dict[int, Calls] = {9001: [], 9002: [], 9003: []}
        nodes = [
            loopback_discovery(
                f"k{p}", p, c, beacon_port=port,
                listen_host="127.255.255.255", broadcast="127.255.255.255",
            )
            for p, c in calls.items()
        ]  # fmt: skip
        for node in nodes:
            await node.start()
        try:
            await wait_for(lambda: all(len(c) == 2 for c in calls.values()))
        finally:
            for node in nodes:
                await node.stop()
        for p, c in calls.items():
            assert sorted(c) == [("127.0.0.1", q) for q in calls if q != p]


LAB_PROBE = """
import asyncio, json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from overlay.beacon import Discovery
from overlay.discovery import choose_interface, list_interfaces
from overlay.network_key import NetworkKey
from overlay.sealing import DatagramSeal

async def main(out, i, n):
    iface = choose_interface(list_interfaces())
    found = []
    network = NetworkKey(bytes(32))
    node = Discovery(iface, seal=DatagramSeal(network.beacon_key, "beacon"),
                     network_id=network.network_id,
                     key=f"k{i}", name=f"n{i}", port=8091, ring_id=lambda: "lab",
                     on_peer=lambda h, p: found.append([h, p]), interval=0.2)
    await node.start()
    deadline = time.monotonic() + 15
    open(f"{out}/{i}.up", "w").close()
    while len(found) < n - 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    open(f"{out}/{i}.found", "w").close()
    import os
    while sum(f.endswith(".found") for f in os.listdir(out)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    poked = f"10.77.0.{i % n + 1}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (poked, 9))
    arp = []
    while poked not in arp and time.monotonic() < deadline:
        arp = await node.scan_arp_once()
        await asyncio.sleep(0.05)
    await node.stop()
    result = {"iface": [iface.name, iface.address, str(iface.network), iface.broadcast],
              "found": found, "poked": poked, "arp": arp, "stats": node.stats}
    print(json.dumps(result))

asyncio.run(main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


@pytest.mark.lab
class TestLab:
    def test_real_broadcast_and_arp_on_a_private_lab_lan(self, tmp_path: Path) -> None:
        """Four hosts in network namespaces of our own (overlay/lab/net.py): nothing outside is
        touched. Each runs the probe above; its JSON answer comes back on its stdout."""
        missing = missing_tools()
        if missing:
            pytest.skip(f"the lab needs {', '.join(missing)}")
        n = 4
        (tmp_path / "probe.py").write_text(LAB_PROBE)
        root = str(Path(__file__).resolve().parents[1])
        lab = Lab(n)
        probes: list[subprocess.Popen[str]] = []
        try:
            try:
                hosts = lab.up()
            except LabError as exc:
                pytest.skip(f"cannot build the netns lab here: {exc}")
            for host in hosts:
                argv = [sys.executable, str(tmp_path / "probe.py"), root, str(tmp_path)]
                probes.append(subprocess.Popen(
                    host.command([*argv, str(host.index), str(n)]),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                ))  # fmt: skip
            deadline = time.monotonic() + 60
            answers = [probe.communicate(timeout=deadline - time.monotonic()) for probe in probes]
        finally:
            for probe in probes:
                if probe.poll() is None:
                    probe.kill()
                    probe.communicate()
            lab.down()
        for i, (probe, (out, err)) in enumerate(zip(probes, answers, strict=True), start=1):
            assert probe.returncode == 0, err
            result = json.loads(out)
            assert result["iface"] == ["eth0", f"10.77.0.{i}", "10.77.0.0/24", "10.77.0.255"]
            others = [[f"10.77.0.{j}", 8091] for j in range(1, n + 1) if j != i]
            assert sorted(result["found"]) == others
            assert result["poked"] in result["arp"]
            assert set(result["arp"]) <= {o[0] for o in others}
            assert result["stats"]["malformed"] == result["stats"]["foreign"] == 0
