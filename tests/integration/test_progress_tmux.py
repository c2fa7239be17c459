"""Progress bars as a person sees them: `python3 Main.py` in a tmux pane fetches a large file
from a deliberately slow node; the pane shows a bar that moves, and `peers` typed meanwhile is
answered while the bar is still drawn."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from overlay.config import Settings
from overlay.node import Node
from tests.credentials import key_file
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of, throttle
from tests.procs import ROOT, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

DONE = re.compile(r"(\d+(?:\.\d+)?) MiB/\d+(?:\.\d+)? MiB")


async def tmux(sock: str, *args: str) -> str:
    """Run a tmux command on our private server (`-L sock`), never the user's."""
    proc = await asyncio.create_subprocess_exec(
        "tmux", "-L", sock, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def pane_until(sock: str, ok: object, timeout: float) -> str:
    """Capture the pane until `ok(text)` holds; fail with the last capture after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        text = await tmux(sock, "capture-pane", "-p", "-t", "main")
        if ok(text):  # type: ignore[operator]
            return text
        assert time.monotonic() < deadline, f"pane never matched; last capture:\n{text}"
        await asyncio.sleep(0.1)


def bottom(text: str) -> str:
    """The last non-empty line of a capture (where the prompt or the bars are)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def done_mb(text: str) -> float | None:
    found = DONE.search(text)
    return float(found.group(1)) if found else None


async def test_bars_move_and_the_prompt_answers_meanwhile(tmp_path: Path) -> None:
    owner_shared = tmp_path / "owner" / "Shared"
    owner = Node(
        Settings(
            port=free_port(),
            host="127.0.0.1",
            shared=owner_shared,
            name="owner",
            discovery=False,
            interval=0.3,
            watch=False,
            network_key=key_file(),
        )
    )
    sha = big_file(owner_shared / "owner" / "movie.bin", 96 * MiB)
    await owner.start()
    assert owner.server is not None
    owner.server.wrap(throttle(0.25))  # about 6 s for 24 blocks: long enough to look at
    sock = f"lanshare-test-{uuid.uuid4().hex[:8]}"
    recv_shared = tmp_path / "recv" / "Shared"
    command = (
        f"{sys.executable} {ROOT / 'Main.py'} --no-discovery --host 127.0.0.1"
        f" --port {free_port()} --shared {recv_shared} --name recv --interval 0.3"
        f" --peer 127.0.0.1:{owner.settings.port} --network-key {key_file()}"
    )
    try:
        await tmux(
            sock,
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "160",
            "-y",
            "30",
            "-c",
            str(ROOT),
            command,
        )
        first = await pane_until(sock, lambda t: (done_mb(t) or 0) > 0 and "movie.bin" in t, 30)
        later = await pane_until(sock, lambda t: (done_mb(t) or 0) > (done_mb(first) or 0), 15)
        assert "owner/movie.bin" in later and "MiB/s" in later, later

        await tmux(sock, "send-keys", "-t", "main", "peers", "Enter")
        answer = await pane_until(sock, lambda t: "ring: 2 node(s)" in t, 10)
        assert ">> peers" in answer, answer
        tail = answer[answer.index("ring: 2 node(s)") :]
        assert done_mb(tail) is not None, f"no bar under the answer to peers:\n{answer}"
        assert answer.count("movie.bin ") == 1, f"a stale bar was left behind:\n{answer}"

        await tmux(sock, "send-keys", "-t", "main", "status", "Enter")
        listed = await pane_until(sock, lambda t: "left  from owner" in t, 10)
        assert re.search(r"owner/movie\.bin  [\d.]+ MiB/[\d.]+ MiB \(\d+%\)", listed), listed

        target = recv_shared / "owner" / "movie.bin"
        await pane_until(sock, lambda t: target.exists() and bottom(t) == ">>", 60)
        assert sha_of(target) == sha
        await tmux(sock, "send-keys", "-t", "main", "peers", "Enter")
        await pane_until(sock, lambda t: t.count("ring: 2 node(s)") == 2, 10)
    finally:
        await tmux(sock, "kill-server")
        await owner.close()
