"""One `python3 Main.py` inside a lab host, driven through its prompt (overlay/lab/driver.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from overlay.lab.driver import PromptDriver
from overlay.lab.net import Host

ROOT = Path(__file__).resolve().parents[2]
MEMBER_LINE = re.compile(r"^ [ *]\s*(\d+)  (.+)  (\S+):(\d+)", re.MULTILINE)


def ring_members(peers_answer: str) -> list[str]:
    """The ring as a `peers` answer lists it: member names in ring order."""
    return [match.group(2) for match in MEMBER_LINE.finditer(peers_answer)]


class LabNode(PromptDriver):
    """`python3 Main.py ARGS` run in `host`'s namespace with `folder` as working directory.

    With no --shared the node shares `folder/Shared`, as a user starting it there would.
    """

    def __init__(self, host: Host, folder: Path, *args: str) -> None:
        self.host = host
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        argv = host.command([sys.executable, str(ROOT / "Main.py"), *args])
        super().__init__(argv, folder, f"the node on {host.address}")

    @property
    def shared(self) -> Path:
        """The node's shared folder; its own files are in `shared / host.address`."""
        return self.folder / "Shared"

    def ring(self) -> list[str]:
        """Member names of the ring this node knows, in ring order."""
        return ring_members(self.command("peers"))
