"""The lab's command line without a lab: notices kept out of answers, the interpreter check,
how to reach each host (issue 15, item 9)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from overlay.lab.__main__ import answer_only, attach_lines, interpreter_hint, missing_packages


def test_change_notices_are_kept_out_of_an_answer() -> None:
    answer = "alpha: 2 file(s), 10 B\n~ alpha/x updated\n+ bravo joined the ring (ring of 2)\n"
    answer += "  alpha/x  5 B\n- alpha/y deleted\n! alpha/z: kept"
    assert answer_only(answer).splitlines() == ["alpha: 2 file(s), 10 B", "  alpha/x  5 B"]


def test_missing_packages_and_the_hint() -> None:
    assert missing_packages(("json", "no_such_package_here")) == ["no_such_package_here"]
    hint = interpreter_hint(["kademlia"])
    assert "lacks kademlia" in hint and "-m overlay.lab" in hint and "\n" not in hint


def test_attach_lines_name_each_host() -> None:
    host = SimpleNamespace(index=2, address="10.77.0.2", pid=4242)
    nodes: list[Any] = [SimpleNamespace(host=host, folder=Path("/x"))]
    lines = attach_lines(nodes)
    assert "'h<N> <command>'" in lines[0]
    assert "h2 10.77.0.2" in lines[1] and "--net=/proc/4242/ns/net" in lines[1]
