"""The node raises its descriptor soft limit to the hard limit (in a process of its own: the
limit belongs to the whole process)."""

from __future__ import annotations

import resource
import subprocess
import sys

from tests.procs import ROOT

RAISE = "from overlay.limits import raise_descriptor_limit; print(raise_descriptor_limit())"


class TestRaiseDescriptorLimit:
    def test_the_soft_limit_goes_up_to_the_hard_one(self) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = min(256, hard)
        script = f'ulimit -Sn {soft} && exec "$0" -c "$1"'
        done = subprocess.run(
            ["sh", "-c", script, sys.executable, RAISE],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert int(done.stdout) == hard
