"""LAN discovery without sockets: ARP rows, interfaces, routes, the peer table."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest

from overlay.announcement import Announcement
from overlay.discovery import (
    ArpEntry,
    Interface,
    PeerTable,
    choose_interface,
    list_interfaces,
    parse_arp_text,
    parse_default_route,
    parse_ip_addr_json,
    parse_ip_neigh,
    parse_proc_arp,
    reachable_peers,
)

ETH0 = Interface("eth0", "192.0.2.2", IPv4Network("192.0.2.0/24"), "192.0.2.255")

PROC_ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.10       0x1         0x2         52:54:00:12:34:56     *        eth0
192.0.2.11       0x1         0x0         00:00:00:00:00:00     *        eth0
192.0.2.16       0x1         0x0         52:54:00:12:34:5e     *        eth0
192.0.2.12       0x1         0x2         52:54:00:12:34:57     *        wlan0
198.51.100.7     0x1         0x2         52:54:00:12:34:58     *        eth0
192.0.2.13       0x1         0x6         52:54:00:12:34:59     *        eth0
192.0.2.2        0x1         0x2         52:54:00:12:34:5a     *        eth0
192.0.2.255      0x1         0x2         ff:ff:ff:ff:ff:ff     *        eth0
192.0.2.10       0x1         0x2         52:54:00:12:34:56     *        eth0
garbage row
192.0.2.14       0x1         zz          52:54:00:12:34:5b     *        eth0
"""

IP_NEIGH = """\
192.0.2.10 dev eth0 lladdr 52:54:00:12:34:56 REACHABLE
192.0.2.11 dev eth0  FAILED
192.0.2.12 dev eth0  INCOMPLETE
192.0.2.16 dev eth0 lladdr 52:54:00:12:34:5e FAILED
192.0.2.13 dev eth0 lladdr 52:54:00:12:34:59 STALE
192.0.2.14 dev eth0 lladdr 52:54:00:12:34:5b router DELAY
192.0.2.15 dev wlan0 lladdr 52:54:00:12:34:5c REACHABLE
198.51.100.7 dev eth0 lladdr 52:54:00:12:34:58 REACHABLE
fe80::1 dev eth0 lladdr 52:54:00:12:34:5d router STALE
"""


class TestProcArp:
    def test_only_complete_rows_on_the_interface_inside_its_subnet(self) -> None:
        assert reachable_peers(parse_proc_arp(PROC_ARP), ETH0) == ["192.0.2.10", "192.0.2.13"]

    def test_rows_parse_with_their_flags(self) -> None:
        entries = parse_proc_arp(PROC_ARP)
        assert entries[0] == ArpEntry("192.0.2.10", "eth0", True)
        assert entries[1] == ArpEntry("192.0.2.11", "eth0", False)
        assert "192.0.2.14" not in [e.address for e in entries]

    def test_a_complete_flag_with_a_zero_mac_is_not_trusted(self) -> None:
        text = PROC_ARP.splitlines()[0] + "\n192.0.2.20 0x1 0x2 00:00:00:00:00:00 * eth0\n"
        assert reachable_peers(parse_proc_arp(text), ETH0) == []

    def test_header_only_and_empty_text_give_nothing(self) -> None:
        assert parse_proc_arp(PROC_ARP.splitlines()[0]) == []
        assert parse_proc_arp("") == []


class TestIpNeigh:
    def test_live_states_only_never_failed_or_incomplete(self) -> None:
        assert reachable_peers(parse_ip_neigh(IP_NEIGH), ETH0) == [
            "192.0.2.10",
            "192.0.2.13",
            "192.0.2.14",
        ]

    def test_rows_without_dev_take_the_device_asked_for(self) -> None:
        text = "192.0.2.10 lladdr 52:54:00:12:34:56 REACHABLE\n192.0.2.11  FAILED\n"
        assert parse_ip_neigh(text, "eth0") == [
            ArpEntry("192.0.2.10", "eth0", True),
            ArpEntry("192.0.2.11", "eth0", False),
        ]

    def test_ipv6_rows_are_skipped(self) -> None:
        assert "fe80::1" not in [e.address for e in parse_ip_neigh(IP_NEIGH)]

    def test_either_format_is_recognised(self) -> None:
        assert parse_arp_text(PROC_ARP, "eth0") == parse_proc_arp(PROC_ARP)
        text = "192.0.2.10 lladdr 52:54:00:12:34:56 STALE\n"
        assert parse_arp_text(text, "eth0") == [ArpEntry("192.0.2.10", "eth0", True)]


IP_ADDR = [
    {"ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24,
                    "broadcast": "192.0.2.255"}]},
    {"ifname": "eth1", "flags": ["BROADCAST", "MULTICAST"],
     "addr_info": [{"family": "inet", "local": "203.0.113.5", "prefixlen": 24}]},
    {"ifname": "wg0", "flags": ["POINTOPOINT", "UP"],
     "addr_info": [{"family": "inet", "local": "10.9.0.2", "prefixlen": 30}]},
]  # fmt: skip

ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wg0\t00000000\t0100090A\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


class TestInterfaces:
    def test_loopback_and_down_interfaces_are_skipped(self) -> None:
        found = parse_ip_addr_json(json.dumps(IP_ADDR))
        assert found == [ETH0, Interface("wg0", "10.9.0.2", IPv4Network("10.9.0.0/30"), "10.9.0.3")]

    def test_the_default_route_with_the_lowest_metric_wins(self) -> None:
        assert parse_default_route(ROUTE) == "eth0"
        assert parse_default_route(ROUTE.splitlines()[0]) is None

    def test_host_picks_its_interface_else_the_default_route(self) -> None:
        found = parse_ip_addr_json(json.dumps(IP_ADDR))
        assert choose_interface(found, "10.9.0.2", route_text=ROUTE).name == "wg0"  # type: ignore[union-attr]
        assert choose_interface(found, None, route_text=ROUTE) == ETH0
        assert choose_interface(found, "0.0.0.0", route_text=ROUTE) == ETH0
        assert choose_interface(found, None, route_text="") == found[0]

    def test_a_host_no_interface_carries_turns_discovery_off(self) -> None:
        found = parse_ip_addr_json(json.dumps(IP_ADDR))
        assert choose_interface(found, "127.0.0.1", route_text=ROUTE) is None
        assert choose_interface([], None, route_text=ROUTE) is None

    def test_this_hosts_interfaces_list_without_loopback(self) -> None:
        try:
            found = list_interfaces()
        except OSError as exc:
            pytest.skip(f"no ip command here: {exc}")
        assert all(not i.address.startswith("127.") for i in found)
        assert all(i.address and i.network.version == 4 for i in found)


ANN = Announcement("a" * 32, "ring-7", "192.0.2.2:8091", 8091)


class TestPeerTable:
    def test_new_peers_are_told_once_until_renotify(self) -> None:
        table = PeerTable(renotify=30.0)
        told = [
            table.observe("192.0.2.10", 8091, t, ttl=7.0, announcement=ANN) for t in range(0, 40, 2)
        ]
        assert told == [True] + [False] * 14 + [True] + [False] * 4

    def test_a_peer_that_went_quiet_is_told_again_when_it_returns(self) -> None:
        table = PeerTable(renotify=30.0)
        assert table.observe("192.0.2.10", 8091, 0.0, ttl=7.0, announcement=ANN)
        assert ("192.0.2.10", 8091) in table
        assert table.expire(8.0)[0].host == "192.0.2.10"
        assert ("192.0.2.10", 8091) not in table
        assert table.peers() == []
        assert table.observe("192.0.2.10", 8091, 9.0, ttl=7.0, announcement=ANN)

    def test_a_new_port_is_a_new_peer(self) -> None:
        table = PeerTable()
        assert table.observe("192.0.2.10", 8091, 0.0, ttl=7.0, announcement=ANN)
        assert table.observe("192.0.2.10", 9000, 1.0, ttl=7.0, announcement=ANN)
        assert [(p.host, p.port) for p in table.peers()] == [
            ("192.0.2.10", 8091),
            ("192.0.2.10", 9000),
        ]

    def test_arp_sighting_of_a_beaconing_host_is_ignored(self) -> None:
        table = PeerTable()
        assert table.observe("192.0.2.10", 9000, 0.0, ttl=7.0, announcement=ANN)
        assert not table.observe("192.0.2.10", 8091, 1.0, ttl=60.0)
        assert table.observe("192.0.2.11", 8091, 1.0, ttl=60.0)
        assert [p.announcement for p in table.peers()] == [ANN, None]

    def test_a_beacon_after_an_arp_sighting_adds_its_announcement_but_is_not_told_twice(
        self,
    ) -> None:
        table = PeerTable()
        assert table.observe("192.0.2.10", 8091, 0.0, ttl=60.0)
        assert not table.observe("192.0.2.10", 8091, 1.0, ttl=7.0, announcement=ANN)
        assert table.peers()[0].announcement == ANN
