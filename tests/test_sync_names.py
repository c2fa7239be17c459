"""Names from the world are data: a name this host cannot share is reported once, with its
reason, at the prompt and in `status`; a name printed never carries raw bytes or terminal
escapes; every name this node derives from another (a kept copy) fits 255 bytes and stays apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from sync.engine import Change
from sync.keep import kept_name
from sync.reports import SyncStatus, printable, trouble_lines
from tests.sync_harness import make_node, start_all, stop_all, wire_ring

WHEN = "2026-11-30 142233"
MARK = f" (conflict bravo {WHEN})"


class TestKeptNames:
    def test_a_short_name_keeps_its_name_and_extension_around_the_mark(self) -> None:
        assert kept_name("doc [1].txt", "bravo", WHEN) == f"doc [1]{MARK}.txt"

    def test_names_without_an_extension(self) -> None:
        assert kept_name("Makefile", "bravo", WHEN) == f"Makefile{MARK}"
        assert kept_name(".bashrc", "bravo", WHEN) == f".bashrc{MARK}"
        assert kept_name("notes.final draft", "bravo", WHEN) == f"notes.final draft{MARK}"

    def test_only_the_last_suffix_is_the_extension(self) -> None:
        assert kept_name("a.tar.gz", "bravo", WHEN) == f"a.tar{MARK}.gz"

    def test_a_255_byte_name_is_shortened_to_fit(self) -> None:
        name = "é" * 124 + "xxx.txt"
        kept = kept_name(name, "bravo", WHEN)
        assert len(kept.encode()) <= 255
        assert kept.startswith("é" * 100) and kept.endswith(f"{MARK}.txt")

    def test_two_long_names_alike_in_their_first_bytes_stay_apart(self) -> None:
        one, two = "a" * 250 + "1.txt", "a" * 250 + "2.txt"
        assert kept_name(one, "bravo", WHEN) != kept_name(two, "bravo", WHEN)

    def test_a_cut_never_splits_a_character(self) -> None:
        for pad in range(4):
            kept = kept_name("x" * pad + "日" * 90, "bravo", WHEN)
            assert len(kept.encode()) <= 255
            kept.encode("utf-8")  # whole characters only

    def test_a_long_host_name_still_fits(self) -> None:
        kept = kept_name("x" * 200 + ".txt", "h" * 255, WHEN)
        assert len(kept.encode()) <= 255 and kept.endswith(f"{WHEN}).txt")


class TestPrintable:
    def test_terminal_escapes_and_raw_bytes_are_shown_escaped(self) -> None:
        assert printable("evil\x1b[2J.txt") == "evil\\x1b[2J.txt"
        assert printable(os.fsdecode(b"bad\xff.txt")) == "bad\\xff.txt"
        assert printable("naïve café 日本.txt") == "naïve café 日本.txt"

    def test_a_change_line_is_printable(self) -> None:
        line = Change("added", "node0", "a\x07b\r.txt").text()
        assert line == "+ node0/a\\x07b\\x0d.txt added"


class TestNamesThatCannotBeShared:
    async def test_each_is_reported_once_with_its_reason(self, tmp_path: Path) -> None:
        node = await make_node(tmp_path, "node0")
        heard: list[Change] = []
        node.engine.add_change_listener(heard.append)
        bad = os.open(os.fsencode(node.own) + b"/bad\xff name.txt", os.O_CREAT | os.O_WRONLY)
        os.close(bad)
        (node.own / "back\\slash.txt").write_bytes(b"a backslash")
        (node.own / "good.txt").write_bytes(b"good")
        await node.engine.start()
        try:
            await node.engine.rescan()
            await node.engine.rescan()
            assert node.engine.find("good.txt")
            warned = [c.text() for c in heard if c.kind == "warning"]
            assert len(warned) == 2, warned
            assert any("bad\\xff name.txt" in line and "UTF-8" in line for line in warned)
            assert any("back\\slash.txt" in line and "backslash" in line for line in warned)
            for line in warned:
                line.encode("utf-8")  # printable at any terminal
            not_shared = node.engine.status().not_shared
            assert set(not_shared) == {"bad\\xff name.txt", "back\\slash.txt"}
            assert "UTF-8" in not_shared["bad\\xff name.txt"]
            os.unlink(os.fsencode(node.own) + b"/bad\xff name.txt")
            await node.engine.rescan()
            assert set(node.engine.status().not_shared) == {"back\\slash.txt"}
        finally:
            await stop_all([node])


class TestNamesThatCannotBeStored:
    async def test_a_path_too_long_for_this_host_is_reported(self, tmp_path: Path) -> None:
        owner = await make_node(tmp_path, "owner")
        recv = await make_node(tmp_path / ("L" * 200) / ("M" * 200), "recv")
        wire_ring([owner, recv])
        folder = os.open(owner.own, os.O_RDONLY)
        for i in range(16):  # about 3,900 bytes below the owner's folder: fine there
            name = f"d{i:02}" + "x" * 236
            os.mkdir(name, dir_fd=folder)
            below = os.open(name, os.O_RDONLY, dir_fd=folder)
            os.close(folder)
            folder = below
        deep = os.open("deep.txt", os.O_CREAT | os.O_WRONLY, dir_fd=folder)
        os.close(deep)
        os.close(folder)
        (owner.own / "plain.txt").write_bytes(b"plain")
        heard: list[Change] = []
        recv.engine.add_change_listener(heard.append)
        await start_all([owner, recv])
        try:
            await recv.engine.pull_once()
            await recv.engine.pull_once()
            assert (recv.root / "owner" / "plain.txt").read_bytes() == b"plain"
            warned = [c for c in heard if c.kind == "warning"]
            assert len(warned) == 1 and warned[0].path.endswith("/deep.txt"), warned
            assert "too long" in warned[0].detail
            (why,) = recv.engine.status().not_stored.values()
            assert "too long" in why
        finally:
            await stop_all([owner, recv])


def test_status_lines_name_what_is_not_shared_not_stored_and_kept() -> None:
    status = SyncStatus(
        1, 1, None, 0, 0, "", 0, 0, False, 0, {},
        not_shared={"bad\\xff.txt": "path is not valid UTF-8"},
        not_stored={"alice/a\x1b.txt": "File name too long"},
        kept=7,
        newest_kept=[("alice/doc.txt", "alice/doc.txt.1796022879171270430")],
    )  # fmt: skip
    assert trouble_lines(status) == [
        "not shared: bad\\xff.txt (path is not valid UTF-8)",
        "cannot store: alice/a\x1b.txt (File name too long)",
        "local changes kept in the trash: 7, newest:",
        "  alice/doc.txt -> alice/doc.txt.1796022879171270430",
    ]
