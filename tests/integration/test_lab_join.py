"""Joining by code on a real LAN (the netns lab): a host with no key file hears the network,
says what to type, and joins with the code typed at its prompt; a host alone founds one; a
network with another key beside it stays apart. Run with `pytest -m lab` (as root)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from overlay.network_key import NetworkKey
from tests.integration.lab_world import World, world

__all__ = ["world"]

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(180)]

Worlds = Callable[..., World]


class TestJoinOnTheLan:
    def test_a_host_with_no_key_file_joins_by_code_typed_at_its_prompt(
        self, world: Worlds, record_property: Callable[[str, object], None]
    ) -> None:
        w = world(2)
        member_host, new_host = w.hosts
        w.share_samples(member_host, (1, 4096, 300_000))
        w.share_samples(new_host, (2, 5000), tag="new-")
        member = w.start(member_host)
        w.wait_ring([member], 1)
        network = NetworkKey.from_text((w.base / "network.key").read_text())
        newcomer = w.start(new_host, member=False, wait=False)
        greeting = newcomer.wait_prompt()
        assert "Enter 'exit' to terminate the program." in greeting
        assert (
            f"network {network.network_id.hex()} found on the LAN: on one of its hosts type"
            " 'invite', then type 'join <code>' here"
        ) in greeting
        assert not (w.base / f"h{new_host.index}" / ".Shared-state" / "network.key").exists()
        match = re.search(r"on the new host type: join (\S+)", member.command("invite"))
        assert match
        start = time.monotonic()
        answer = newcomer.command(f"join {match.group(1)}")
        assert f"joined network {network.network_id.hex()}" in answer, newcomer.errors
        w.wait_ring([member, newcomer], 2)
        in_ring = time.monotonic() - start
        w.wait_converged([member, newcomer])
        total = time.monotonic() - start
        record_property("join_to_ring_s", round(in_ring, 2))
        record_property("join_to_all_files_s", round(total, 2))
        print(f"\nlab join by code: in the ring {in_ring:.2f} s, every file {total:.2f} s")

    def test_a_host_alone_on_the_lan_founds_a_network_and_says_so(self, world: Worlds) -> None:
        w = world(1)
        start = time.monotonic()
        node = w.start(w.hosts[0], member=False, wait=False)
        greeting = node.wait_prompt()
        waited = time.monotonic() - start
        match = re.search(r"founded network ([0-9a-f]{16}); type 'invite' on this host", greeting)
        assert match, greeting
        stored = w.base / "h1" / ".Shared-state" / "network.key"
        assert NetworkKey.from_text(stored.read_text()).network_id.hex() == match.group(1)
        assert waited >= 4.0, "it listened two beacon intervals before founding"

    def test_a_network_with_another_key_beside_the_ring_stays_apart(self, world: Worlds) -> None:
        w = world(3)
        ours = [w.start(host) for host in w.hosts[:2]]
        other = w.start(w.hosts[2], "--network-key", str(w.base / "other.key"), member=False)
        w.wait_ring(ours, 2)
        time.sleep(5)  # beacons every 2 s: each side has heard the other's a few times
        assert w.one_ring(ours, 2)
        assert len(other.ring()) == 1
