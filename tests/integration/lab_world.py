"""A lab LAN with real `python3 Main.py` nodes on it, and the checks a user would make.

Every node runs in a namespace of its own (overlay/lab/net.py) with no --peer and no --port:
it has to find the others on the lab LAN by itself. What is checked is what a person sees:
`peers` at each prompt, and the bytes of every file in every host's Shared/ folder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from overlay.lab.net import TOOLS, Host, Lab, LabError, missing_tools
from overlay.lab.node import LabNode
from tests.sync_harness import tree

NODE_ARGS = ("--interval", "0.5")
"""A short manifest pull interval keeps the suite within minutes."""


def wait_until(
    cond: Callable[[], bool], timeout: float, what: str, explain: Callable[[], str] = str
) -> float:
    """Poll `cond` until it holds; seconds it took. Fails the test with `what` on timeout."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{explain()}")
        time.sleep(0.1)
    return time.monotonic() - start


class World:
    """A lab of `n` hosts, the nodes started on it, and the files each owner shared."""

    def __init__(self, base: Path, n: int) -> None:
        self.base = base
        self.lab = Lab(n)
        self.nodes: list[LabNode] = []
        self.expected: dict[str, dict[str, str]] = {}

    @property
    def hosts(self) -> list[Host]:
        return self.lab.hosts

    def share(self, host: Host, files: dict[str, bytes]) -> None:
        """Put files into `host`'s own folder (before or after its node starts)."""
        own = self.base / f"h{host.index}" / "Shared" / host.address
        for rel, data in files.items():
            path = own / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".lab-tmp")
            tmp.write_bytes(data)
            tmp.rename(path)
            self.expected.setdefault(host.address, {})[rel] = hashlib.sha256(data).hexdigest()

    def share_samples(self, host: Host, sizes: Iterable[int], tag: str = "") -> None:
        """Random files of the given sizes, with names a user might pick."""
        names = ["notes.txt", "photos/holiday ü.jpg", "FILE", "deep/er/JOIN.bin", "a b c.dat"]
        files = {
            f"{tag}{names[i % len(names)]}" if i < len(names) else f"{tag}extra-{i}.bin":
            os.urandom(size)
            for i, size in enumerate(sizes)
        }  # fmt: skip
        self.share(host, files)

    def start(self, host: Host, *extra: str, wait: bool = True, member: bool = True) -> LabNode:
        """`python3 Main.py --interval 0.5 EXTRA` in `host`'s namespace, from its own folder; a
        member of the lab's one network (its key file is made by the first node started), or
        with `member` False a host with no key at all."""
        network = ("--network-key", str(self.base / "network.key")) if member else ()
        node = LabNode(host, self.base / f"h{host.index}", *NODE_ARGS, *network, *extra)
        self.nodes.append(node)
        if wait:
            assert "Enter 'exit' to terminate the program." in node.wait_prompt()
        return node

    def live(self) -> list[LabNode]:
        return [node for node in self.nodes if node.proc.poll() is None]

    def one_ring(self, nodes: list[LabNode], size: int) -> bool:
        """Every node's `peers` lists the same ring of `size` members."""
        rings = [node.ring() for node in nodes]
        return all(len(ring) == size and ring == rings[0] for ring in rings)

    def converged(self, nodes: list[LabNode], owners: Iterable[str] | None = None) -> bool:
        """Every node holds every owner's files byte-exact, and nothing else in their folders."""
        wanted = list(self.expected if owners is None else owners)
        return all(tree(n.shared / o) == self.expected[o] for n in nodes for o in wanted)

    def wait_ring(self, nodes: list[LabNode], size: int, timeout: float = 60.0) -> float:
        """Seconds until `one_ring`; on timeout the test fails with every node's view."""
        return wait_until(
            lambda: self.one_ring(nodes, size), timeout, f"one ring of {size}",
            lambda: "\n".join(n.command("peers") for n in self.live()) + self.diagnose(),
        )  # fmt: skip

    def wait_converged(
        self, nodes: list[LabNode], owners: Iterable[str] | None = None, timeout: float = 90.0
    ) -> float:
        """Seconds until `converged`; on timeout the test fails with what differs."""
        owners = list(self.expected if owners is None else owners)
        return wait_until(
            lambda: self.converged(nodes, owners), timeout, "every file everywhere",
            lambda: self.differences(nodes, owners) + self.diagnose(),
        )  # fmt: skip

    def differences(self, nodes: list[LabNode], owners: Iterable[str]) -> str:
        """Which node lacks or has wrong files of which owner."""
        lines = []
        for node in nodes:
            for owner in owners:
                have, want = tree(node.shared / owner), self.expected[owner]
                if have != want:
                    wrong = sorted(k for k in have.keys() & want.keys() if have[k] != want[k])
                    missing, extra = sorted(want.keys() - have.keys()), sorted(have - want.keys())
                    lines.append(
                        f"{node.host.address} / {owner}: missing {missing} extra {extra}"
                        f" wrong {wrong}"
                    )
        return "\n".join(lines) + "\n"

    def diagnose(self) -> str:
        """What each node printed on stderr, for a failing test's report."""
        return "\n".join(
            f"--- {n.host.address} (exit {n.proc.poll()}):\n{n.errors[-1500:]}" for n in self.nodes
        )

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self.lab.down()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """`world(n, *tools)`: a lab of n hosts; skips with the reason where namespaces cannot be
    made or a tool the test needs (nft, tc) is missing."""
    made: list[World] = []

    def make(n: int, *tools: str) -> World:
        missing = missing_tools((*TOOLS, *tools))
        if missing:
            pytest.skip(f"the lab needs {', '.join(missing)}")
        w = World(tmp_path, n)
        made.append(w)
        try:
            w.lab.up()
        except LabError as exc:
            pytest.skip(f"cannot build a namespace lab here: {exc}")
        return w

    yield make
    for w in made:
        w.close()
