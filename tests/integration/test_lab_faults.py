"""Faults on the lab LAN: kill -9 during transfers, lossy cables, a slow holder.

Same lab as test_lab_lan.py: every host a network namespace of our own, nodes started with no
--peer and no --port. Run with `pytest -m lab` (as root).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import pytest

from overlay.lab.node import LabNode
from tests.integration.lab_world import World, wait_until, world
from tests.sync_harness import tree

__all__ = ["world"]

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(240)]

Worlds = Callable[..., World]
Record = Callable[[str, object], None]


def ring_position(node: LabNode) -> int:
    match = re.search(r"this node: id (\d+)", node.command("peers"))
    assert match, node.output[-500:]
    return int(match.group(1))


def agree(nodes: list[LabNode], owner: str) -> Callable[[], bool]:
    """A condition: every node's copy of `owner`'s folder is the same, file for file."""

    def check() -> bool:
        first, *rest = [tree(n.shared / owner) for n in nodes]
        return all(copy == first for copy in rest)

    return check


class TestKill9:
    def test_node_0_and_another_die_while_files_move_the_rest_heal_and_a_newcomer_catches_up(
        self, world: Worlds, record_property: Record
    ) -> None:
        w = world(6)
        for host in w.hosts:
            w.share_samples(host, (10, 50_000))
        for host in w.hosts:
            w.start(host)
        w.wait_ring(w.nodes, 6)
        w.wait_converged(w.nodes)
        by_position = {ring_position(node): node for node in w.nodes}
        victims = [by_position[0], by_position[3]]
        survivors = [node for node in w.nodes if node not in victims]
        dead = {node.host.address for node in victims}
        settled = {owner: dict(files) for owner, files in w.expected.items()}

        for host in w.hosts:  # new files everywhere, then kill while they are on the wire
            w.share_samples(host, (2_000_000, 3_000_000), tag="moving-")
        wait_until(
            lambda: any(
                p.parent.name != n.host.address
                for n in w.nodes for p in n.shared.glob("*/moving-notes.txt")
            ),
            30, "the first new file arrives somewhere",
        )  # fmt: skip
        for node in victims:
            node.kill()
        killed = time.monotonic()
        heal = w.wait_ring(survivors, 4, timeout=60)
        live_owners = [o for o in w.expected if o not in dead]
        converge = w.wait_converged(survivors, live_owners, timeout=120)
        record_property("seconds_to_heal", round(heal, 2))
        print(
            f"\nkill -9 of node 0 and node 3: one ring of 4 after {heal:.2f} s,"
            f" converged {time.monotonic() - killed:.2f} s after the kill ({converge:.2f})"
        )

        for owner in dead:  # the dead hosts' files: what was settled, and nothing torn
            for node in survivors:
                have = tree(node.shared / owner)
                assert settled[owner].items() <= have.items(), (node.host.address, owner)
                torn = {p for p in have if have[p] != w.expected[owner].get(p)}
                assert not torn, f"{node.host.address} holds torn copies of {owner}: {torn}"

        newcomer = w.start(w.lab.add_host())
        w.wait_ring(survivors + [newcomer], 5, timeout=60)
        w.wait_converged([newcomer], live_owners, timeout=60)
        for owner in dead:
            wait_until(
                agree([*survivors, newcomer], owner),
                60, f"every survivor and the newcomer hold the same copy of {owner}",
            )  # fmt: skip


class TestLoss:
    def test_ten_percent_loss_on_two_cables_still_converges(
        self, world: Worlds, record_property: Record
    ) -> None:
        w = world(6, "nft")
        for host in (w.hosts[1], w.hosts[4]):
            w.lab.set_loss(host, 10)
        for host in w.hosts:
            w.share_samples(host, (0, 1000, 200_000, 1_500_000))
        start = time.monotonic()
        for host in w.hosts:
            w.start(host)
        w.wait_ring(w.nodes, 6, timeout=25)  # was 30-60 s when a lost contact waited 30 s
        ring = time.monotonic() - start
        w.wait_converged(w.nodes, timeout=90)
        total = time.monotonic() - start
        dropped = w.lab.dropped()
        record_property("seconds_to_converge", round(total, 2))
        print(
            f"\n10% loss on two cables: one ring {ring:.2f} s, every file {total:.2f} s,"
            f" {dropped} frames dropped"
        )
        assert dropped > 100, "the loss rules never dropped anything"


class TestSlowHolder:
    def test_a_dht_fetch_takes_most_bytes_from_the_fast_holder(
        self, world: Worlds, record_property: Record
    ) -> None:
        """Hosts 1 (fast) and 2 (sending at 8 Mbit/s) hold one file; host 3 fetches it with
        --dht. Bytes are counted on the holders' cables, where they are sent."""
        w = world(3, "tc")
        fast, slow, fetcher = w.hosts
        size = 6_000_000
        w.share(fast, {"big.bin": os.urandom(size)})
        a = w.start(fast, "--dht")
        b = w.start(slow, "--dht")
        w.wait_converged([a, b])
        slow.set_rate("8mbit")
        a.poll_command("who-has big.bin", lambda t: t.count(":8091") == 2, timeout=30)
        before = {h.address: h.link_stats()["tx_bytes"] for h in (fast, slow)}
        c = w.start(fetcher, "--dht")
        took = w.wait_converged([c], timeout=60)
        sent = {h.address: h.link_stats()["tx_bytes"] - before[h.address] for h in (fast, slow)}
        record_property("bytes_sent", sent)
        print(
            f"\nfetch of {size} B took {took:.2f} s; sent by fast {sent[fast.address]},"
            f" by slow {sent[slow.address]}"
        )
        assert sent[fast.address] > size / 2, sent
        assert sent[fast.address] > 2 * sent[slow.address], sent
