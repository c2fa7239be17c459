"""A receiver whose shared folder is a small tmpfs: a file that does not fit leaves no trace, the
node keeps serving, and the download succeeds once there is room."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sync.messages import ManifestData, ManifestRequest
from sync.resume import PARTIAL_DIR
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of
from tests.sync_harness import make_node, stop_all
from tests.wire_client import request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("mount") is None,
        reason="mounting a tmpfs needs root (CI runs as root)",
    ),
]


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


async def test_a_full_disk_leaves_no_file_and_the_node_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "recv" / "shared"
    mount_tmpfs(shared, "16m")
    try:
        owner = await make_node(tmp_path, "owner", interval=3600.0)
        sha = big_file(owner.own / "big.bin", 40 * MiB)
        (owner.own / "small.txt").write_bytes(b"fits")
        recv = await make_node(tmp_path, "recv", interval=3600.0)
        peers = {"owner": owner.peer, "recv": recv.peer}
        recv.engine.set_topology(owner.peer, peers)
        owner.engine.set_topology(recv.peer, peers)
        await owner.engine.start()
        await recv.engine.start()
        try:
            with caplog.at_level(logging.ERROR, logger="sync"):
                await recv.engine.pull_once()
            assert (shared / "owner" / "small.txt").read_bytes() == b"fits"
            assert not (shared / "owner" / "big.bin").exists()
            assert not any((shared / PARTIAL_DIR).iterdir())
            assert any("no space left" in r.getMessage() for r in caplog.records), caplog.text

            reply = await request("127.0.0.1", recv.peer.port, ManifestRequest({}), 5.0)
            assert isinstance(reply, ManifestData) and reply.entries  # still serving

            subprocess.run(["mount", "-o", "remount,size=64m", str(shared)], check=True)
            await recv.engine.pull_once()
            assert sha_of(shared / "owner" / "big.bin") == sha
            assert hashlib.sha256(b"fits").hexdigest() in recv.engine.held_hashes()
        finally:
            await stop_all([owner, recv])
    finally:
        subprocess.run(["umount", "-l", str(shared)], check=False)
