"""See it on one machine: `python3 -m overlay.lab [N]` (as root).

Builds a private LAN of N hosts in network namespaces (overlay/lab/net.py), starts
`python3 Main.py --dht` in each with a few sample files, no --peer and one --network-key file
for all (members of one network), then shows what a user would see: the ring as `peers` prints
it, the files each host ends up with, and `who-has` answers. Then every node leaves the ring
and the lab is taken down. Nothing outside the lab's own namespaces is touched.

With `--hold` the lab stays up and says how to reach each host: `h<N> <command>` typed at the
lab's own prompt runs at host N's prompt (the lab holds each node's standard input), and an
`nsenter` line gives a shell inside a host's namespace.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from overlay.lab.net import Lab, LabError, missing_tools
from overlay.lab.node import ROOT, LabNode


def sample_files(address: str) -> dict[str, bytes]:
    """What each lab host shares: a note, a binary blob and a file in a subfolder."""
    return {
        f"hello from {address}.txt": f"Hello from the host at {address}.\n".encode(),
        "blob.bin": os.urandom(100_000),
        f"docs/report {address}.pdf": b"%PDF-1.4 sample\n" + os.urandom(20_000),
    }


def wait(cond: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `cond` held, or None if it did not within `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.2)
    return time.monotonic() - start


def holdings(node: LabNode) -> set[tuple[str, int]]:
    """(owner/path, size) of every file in the node's shared folder."""
    return {
        (p.relative_to(node.shared).as_posix(), p.stat().st_size)
        for p in node.shared.rglob("*")
        if p.is_file()
    }


NOTICE = re.compile(r"^[+~!-] \S")
"""A change notice a node prints unasked (`~ alice/x updated`, `+ bravo joined the ring`)."""

NEEDED = ("kademlia", "rpcudp", "msgpack", "rich", "watchdog", "cryptography", "spake2", "mnemonic")
"""Packages every lab node imports: the lab checks this interpreter has them before it starts."""


def answer_only(text: str) -> str:
    """A command's answer without the change notices that arrived meanwhile."""
    return "\n".join(line for line in text.splitlines() if not NOTICE.match(line))


def show(title: str, text: str) -> None:
    print(f"\n== {title}")
    print(answer_only(text).rstrip())


def missing_packages(names: tuple[str, ...] = NEEDED) -> list[str]:
    """The packages of `names` this interpreter cannot import."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def interpreter_hint(missing: list[str]) -> str:
    """One line: which packages this interpreter lacks, and the command that has them."""
    venv = ROOT / ".venv" / "bin" / "python"
    how = (
        f"cd {ROOT} && sudo {venv} -m overlay.lab"
        if venv.exists()
        else f"cd {ROOT} && python3 -m venv .venv && .venv/bin/python -m pip install ."
        " && sudo .venv/bin/python -m overlay.lab"
    )
    return f"{sys.executable} lacks {', '.join(missing)}: run the lab with the project's: {how}"


def attach_lines(nodes: list[LabNode]) -> list[str]:
    """How to reach each host while the lab is held up."""
    lines = ["each host's prompt: type 'h<N> <command>' here, e.g. 'h1 peers'; Enter alone ends"]
    for node in nodes:
        pid = node.host.pid
        lines.append(
            f"  h{node.host.index} {node.host.address}  shell in its namespace:"
            f" nsenter --net=/proc/{pid}/ns/net --uts=/proc/{pid}/ns/uts bash"
        )
    return lines


def hold_prompt(nodes: list[LabNode]) -> None:
    """Run `h<N> <command>` lines at host N's prompt until an empty line or end of input."""
    by_index = {f"h{node.host.index}": node for node in nodes}
    while True:
        try:
            line = input("lab> ").strip()
        except EOFError:
            return
        if not line:
            return
        target, _, command = line.partition(" ")
        node = by_index.get(target)
        if node is None or not command:
            print(f"type h1..h{len(nodes)} and a command, e.g. 'h1 files'; Enter alone ends")
            continue
        print(node.command(command).rstrip())


def run(n: int, folder: Path, interval: float, hold: bool) -> int:
    """Bring the lab up, show the ring and who-has, take it down; the exit status."""
    lab = Lab(n)
    nodes: list[LabNode] = []
    try:
        hosts = lab.up()
        first, last = hosts[0].address, hosts[-1].address
        print(f"lab: {n} hosts {first}..{last} on one bridge; their folders in {folder}")
        key = folder / "network.key"  # one network: the first node to start creates its key
        for host in hosts:
            own = folder / f"h{host.index}" / "Shared" / host.address
            for rel, data in sample_files(host.address).items():
                (own / rel).parent.mkdir(parents=True, exist_ok=True)
                (own / rel).write_bytes(data)
            args = ("--dht", "--interval", str(interval), "--network-key", str(key))
            nodes.append(LabNode(host, folder / f"h{host.index}", *args))
        for node in nodes:
            node.wait_prompt()
        print("started: python3 Main.py --dht in each host, no --peer, no --port, one network key")

        took = wait(lambda: all(len(node.ring()) == n for node in nodes), 60)
        if took is None:
            show("the ring did not form in 60 s; host 1 says", nodes[0].command("peers"))
            return 1
        print(f"one ring of {n} after {took:.1f} s")
        show(f"peers, typed at host {n}", nodes[-1].command("peers"))

        expected = set().union(*(holdings(node) for node in nodes))
        took = wait(lambda: all(holdings(node) == expected for node in nodes), 60)
        if took is None:
            print("\nnot every host holds every file after 60 s")
        else:
            print(f"\nevery host holds all {len(expected)} files after {took:.1f} s more")
        show("files, typed at host 1", nodes[0].command("files"))

        for node, query in ((nodes[0], f"hello from {last}.txt"), (nodes[-1], "blob.bin")):
            answer = node.command(f"who-has {query}")
            show(f"who-has {query}, typed at host {node.host.index}", answer)
        if hold:
            print(f"\nthe lab stays up; folders in {folder}")
            print("\n".join(attach_lines(nodes)))
            hold_prompt(nodes)
        return 0 if took is not None else 1
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                try:
                    node.exit()
                except (TimeoutError, subprocess.TimeoutExpired, OSError):
                    node.stop()
        lab.down()
        print("\nevery node left the ring; lab down")


def main(argv: list[str] | None = None) -> None:
    """`python3 -m overlay.lab [N] [--interval S] [--hold] [--dir DIR]`."""
    parser = argparse.ArgumentParser(
        prog="python3 -m overlay.lab", description=(__doc__ or "").split("\n")[0]
    )
    add = parser.add_argument
    add("hosts", nargs="?", type=int, default=4, help="lab hosts (2-50, default 4)")
    add("--interval", type=float, default=1.0, help="manifest pull interval of each node")
    add("--hold", action="store_true", help="keep the lab up until Enter")
    add("--dir", type=Path, help="the hosts' folders (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if not 2 <= args.hosts <= 50:
        parser.error("hosts: 2 to 50")
    missing = missing_tools()
    if missing:
        sys.exit(f"the lab needs {', '.join(missing)} (network namespaces of its own)")
    lacking = missing_packages()
    if lacking:
        sys.exit(interpreter_hint(lacking))
    folder = args.dir or Path(tempfile.mkdtemp(prefix="lanshare-lab-"))
    try:
        status = run(args.hosts, folder.resolve(), args.interval, args.hold)
    except LabError as exc:
        sys.exit(f"cannot build the lab here: {exc}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
