"""Tab completion at a terminal: commands first, then file and folder names (issue 15, 6)."""

from __future__ import annotations

from overlay.lineedit import complete

COMMANDS = ["help", "peers", "files", "ls", "who-has", "status", "exit"]
FILES = ["alpha/docs/report.pdf", "alpha/notes.txt", "bravo/photo.png"]


def known_names() -> list[str]:
    return FILES


def test_the_first_word_is_a_command() -> None:
    assert complete("", "p", COMMANDS, known_names) == ["peers"]
    assert complete("", "", COMMANDS, known_names) == sorted(COMMANDS)


def test_who_has_completes_whole_file_names() -> None:
    assert complete("who-has ", "alpha/", COMMANDS, known_names) == [
        "alpha/docs/report.pdf",
        "alpha/notes.txt",
    ]


def test_ls_completes_one_folder_at_a_time() -> None:
    assert complete("ls ", "al", COMMANDS, known_names) == ["alpha/"]
    assert complete("ls ", "alpha/", COMMANDS, known_names) == ["alpha/docs/", "alpha/notes.txt"]


def test_file_names_are_not_asked_for_a_command_name() -> None:
    def boom() -> list[str]:
        raise AssertionError("asked")

    assert complete("", "st", COMMANDS, boom) == ["status"]
    assert complete("peers ", "x", COMMANDS, boom) == []


def test_no_names_after_other_commands_or_a_second_argument() -> None:
    assert complete("peers ", "a", COMMANDS, known_names) == []
    assert complete("who-has alpha/notes.txt ", "b", COMMANDS, known_names) == []
