"""Real processes and a real kill -9: the ring heals when two nodes die, node 0 among them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.credentials import key_file
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]

NODE = """
import asyncio, json, logging, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from overlay.credentials import Credentials
from overlay.keystore import read_network
from ring.membership import Member
from ring.wire import FrameServer
from ring.service import RingService

async def main() -> None:
    creds = Credentials(read_network(Path(sys.argv[1])), Ed25519PrivateKey.generate())
    peers = [("127.0.0.1", int(p)) for p in sys.argv[2:]]
    server = FrameServer("127.0.0.1", 0, door=creds.door())
    port = await server.start()
    svc = RingService(server, Member(creds.key, f"p{port}", "127.0.0.1", port))
    def report(view) -> None:
        line = {"port": port, "version": view.version, "members": [m.port for m in view.members]}
        sys.stdout.write(json.dumps(line) + "\\n")
        sys.stdout.flush()
    svc.add_listener(report)
    await svc.start(peers)
    report(svc.view)
    await asyncio.Event().wait()

logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
"""


class Node:
    """One child process running a ring node; `members` is the last view it reported."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.port = 0
        self.members: list[int] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line: dict[str, Any] = json.loads(raw)
            self.port = line["port"]
            self.members = line["members"]


@pytest.fixture
async def spawn() -> AsyncIterator[Any]:
    nodes: list[Node] = []

    async def start(*peers: int) -> Node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            NODE,
            str(key_file()),
            *map(str, peers),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        node = Node(proc)
        nodes.append(node)
        await wait_for(lambda: node.port != 0, 10)
        return node

    yield start
    for node in nodes:
        if node.proc.returncode is None:
            node.proc.kill()
        await node.proc.wait()
        node.reader.cancel()


def agree(nodes: list[Node]) -> bool:
    ports = sorted(n.port for n in nodes)
    return all(sorted(n.members) == ports and n.members == nodes[0].members for n in nodes)


async def test_kill_9_of_node_0_and_another_heals(spawn: Any) -> None:
    first = await spawn()
    nodes = [first] + [await spawn(first.port) for _ in range(4)]
    await wait_for(lambda: agree(nodes), 10)
    order = {port: i for i, port in enumerate(first.members)}
    victims = [first, next(n for n in nodes if order[n.port] == 2)]
    for victim in victims:
        victim.proc.send_signal(signal.SIGKILL)
    survivors = [n for n in nodes if n not in victims]
    healed = await wait_for(lambda: agree(survivors), 5)
    assert survivors[0].members[0] == first.members[1], "the lowest survivor leads"
    late = await spawn(survivors[-1].port)
    await wait_for(lambda: agree(survivors + [late]), 5)
    assert healed < 5
