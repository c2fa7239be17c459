"""A newcomer's first ten minutes (issue 15), scripted: real `Main.py` processes, one of them in
a real terminal (tmux), seen as a person sees them; each bad flag; two nodes on one folder; a
host started on its own that joins later."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from overlay.config import Settings
from overlay.node import Node
from tests.credentials import key_file
from tests.integration.test_progress_tmux import done_mb, pane_until, tmux
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of, throttle
from tests.procs import ROOT, NodeProcess, free_port

pytestmark = pytest.mark.integration

BAD_FLAGS = [
    ("--port", "99999"),
    ("--name", "../evil"),
    ("--concurrency", "0"),
    ("--interval", "abc"),
    ("--settle", "-2"),
    ("--peer", "host:70000"),
]


@pytest.fixture
def procs() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()


@pytest.mark.parametrize("flag, value", BAD_FLAGS)
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "Main.py"), "--shared", str(tmp_path / "S"), flag, value],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        flag in lines[0]
        and repr(value) in lines[0]
        and "allowed" in lines[0]
        or (flag == "--peer" and "1 to 65535" in lines[0])
    ), lines[0]
    assert not (tmp_path / "S").exists(), "nothing is created for a refused command line"


def test_two_nodes_on_one_folder(tmp_path: Path, procs: list[NodeProcess]) -> None:
    first = NodeProcess(tmp_path / "Shared", free_port(), "--name", "alpha")
    procs.append(first)
    first.wait_prompt()
    second = NodeProcess(tmp_path / "Shared", free_port(), "--name", "alpha")
    procs.append(second)
    assert second.proc.wait(20) == 1
    lines = [line for line in second.errors.splitlines() if line.strip()]
    assert len(lines) == 1, second.errors
    assert f"pid {first.proc.pid}, port {first.port}" in lines[0], lines[0]
    assert "ring: 1 node(s)" in first.command("peers"), "the first node is still up"


def test_a_host_started_alone_joins_later_under_its_host_name(
    tmp_path: Path, procs: list[NodeProcess]
) -> None:
    alpha = NodeProcess(tmp_path / "a" / "Shared", free_port(), "--name", "alpha")
    procs.append(alpha)
    alpha.wait_prompt()
    # no --name, no key, no peer: it founds a network of its own, named after the host
    loner = NodeProcess(tmp_path / "b" / "Shared", free_port(), member=False)
    procs.append(loner)
    banner = loner.wait_prompt()
    name = re.search(r"this host is '([^']+)'", banner)
    assert name and "alone in its ring" in banner, banner
    assert not name.group(1).startswith("127."), "never a loopback address"
    (loner.shared / name.group(1)).mkdir(parents=True, exist_ok=True)
    (loner.shared / name.group(1) / "mine.txt").write_text("from the loner\n")
    answer = alpha.command("invite")
    code = re.search(r"join (\S+) (127\.0\.0\.1:\d+)\)", answer)
    assert code, answer
    assert "joined network" in loner.command(f"join {code.group(1)} {code.group(2)}", 60)
    answer = alpha.poll_command("peers", lambda t: "ring: 2 node(s)" in t, 30)
    assert f"  {name.group(1)}  127.0.0.1:{loner.port}" in answer, answer
    deadline = time.monotonic() + 30
    target = alpha.shared / name.group(1) / "mine.txt"
    while not target.exists():
        assert time.monotonic() < deadline, "the loner's file never arrived"
        time.sleep(0.1)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_a_newcomer_session_in_a_terminal(tmp_path: Path) -> None:
    """banner, help, a bar that moves, a host joining and leaving, ls, who-has hit and miss,
    a conflict copy, a file of the newcomer's reaching the other member, exit."""
    owner_shared = tmp_path / "owner" / "Shared"
    owner = Node(
        Settings(
            port=free_port(), host="127.0.0.1", shared=owner_shared, name="owner",
            discovery=False, interval=0.3, watch=False, network_key=key_file(),
        )
    )  # fmt: skip
    big_file(owner_shared / "owner" / "movie.bin", 48 * MiB)
    (owner_shared / "owner" / "docs").mkdir()
    (owner_shared / "owner" / "docs" / "report.pdf").write_bytes(b"%PDF-1.4\n" * 100)
    (owner_shared / "owner" / "note.txt").write_text("the owner's note\n")
    await owner.start()
    assert owner.server is not None
    owner.server.wrap(throttle(0.25))
    sock = f"lanshare-newcomer-{uuid.uuid4().hex[:8]}"
    mine = tmp_path / "new" / "Shared"
    command = (
        f"{sys.executable} {ROOT / 'Main.py'} --dht --no-discovery --host 127.0.0.1"
        f" --port {free_port()} --shared {mine} --interval 0.3"
        f" --peer 127.0.0.1:{owner.settings.port} --network-key {key_file()}"
    )

    async def keys(*typed: str) -> None:
        await tmux(sock, "send-keys", "-t", "main", *typed)

    try:
        await tmux(sock, "new-session", "-d", "-s", "main", "-x", "160", "-y", "40",
                   "-c", str(ROOT), command)  # fmt: skip
        await tmux(sock, "set-option", "-t", "main", "remain-on-exit", "on")  # to read "bye"
        text = await pane_until(sock, lambda t: "type 'help'" in t, 30)
        folder = re.search(r"this host is '[^']+'; your files go in (\S+)/", text)
        assert folder, text
        first = await pane_until(sock, lambda t: (done_mb(t) or 0) > 0, 30)
        await pane_until(sock, lambda t: (done_mb(t) or 0) > (done_mb(first) or 0), 15)

        await keys("help", "Enter")
        await pane_until(sock, lambda t: "ls [owner[/folder]]" in t, 10)
        target = mine / "owner" / "movie.bin"
        await pane_until(sock, lambda t: target.exists(), 60)
        assert sha_of(target) == sha_of(owner_shared / "owner" / "movie.bin")

        late = Node(
            Settings(
                port=free_port(), host="127.0.0.1", shared=tmp_path / "late" / "Shared",
                name="late", discovery=False, interval=0.3, watch=False,
                network_key=key_file(), peers=(("127.0.0.1", owner.settings.port),),
            )
        )  # fmt: skip
        await late.start()
        await pane_until(sock, lambda t: "+ late joined the ring (ring of 3)" in t, 20)
        await late.leave()
        await pane_until(sock, lambda t: "- late left the ring (ring of 2)" in t, 20)

        await keys("clear", "Enter")  # an unknown command: a fresh screen part to read
        await keys("ls owner", "Enter")
        text = await pane_until(sock, lambda t: "docs/  1 file(s)" in t, 10)
        assert "movie.bin  48.0 MiB" in text, text
        await keys("who-has movie.bin", "Enter")
        text = await pane_until(sock, lambda t: "owner/movie.bin  sha256" in t, 15)
        text = await pane_until(sock, lambda t: "(this node)" in t, 15)
        assert re.search(r"  owner  127\.0\.0\.1:\d+  id \d .*\[owner", text), text
        await keys("who-has moive.bin", "Enter")
        text = await pane_until(sock, lambda t: "did you mean:" in t, 10)
        assert "  owner/movie.bin" in text[text.index("did you mean:") :], text

        replica = mine / "owner" / "note.txt"
        await pane_until(sock, lambda t: replica.exists(), 10)
        replica.write_text("my own edit of the owner's note\n")
        await keys("status", "Enter")
        await pane_until(sock, lambda t: "replicas edited here: 1" in t, 10)
        (owner_shared / "owner" / "note.txt").write_text("the owner's second note\n")
        text = await pane_until(sock, lambda t: "(conflict " in t, 30)
        trash = mine.parent / ".Shared-state" / "trash" / "owner"
        kept = [p.name for p in trash.iterdir()]
        assert len(kept) == 1 and re.fullmatch(
            r"note \(conflict \S+ \d{4}-\d\d-\d\d \d{6}\)\.txt", kept[0]
        ), kept

        (Path(folder.group(1)) / "hello.txt").write_text("from the newcomer\n")
        await pane_until(sock, lambda t: "✓ hello.txt reached every member (1)" in t, 20)

        await keys("exit", "Enter")
        await pane_until(sock, lambda t: "bye" in t, 20)
    finally:
        await tmux(sock, "kill-server")
        await owner.close()
