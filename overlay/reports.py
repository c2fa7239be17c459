"""What the prompt prints: plain functions from data to text, tested without a node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ring.membership import Member, View
from ring.roster import fingerprint


def human_size(size: int) -> str:
    """Bytes as a person reads them (1.5 MiB), exact below 1 KiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rtt(seconds: float | None) -> str:
    """A round-trip time in milliseconds, or a dash when never measured."""
    return "rtt -" if seconds is None else f"rtt {seconds * 1000:.2f} ms"


def _member_line(view: View, member: Member, rtt: float | None) -> str:
    position = view.position(member.key)
    return f"id {position} {member.name!r} {member.host}:{member.port} {human_rtt(rtt)}"


def peers_text(view: View, me: Member, rtts: Mapping[str, float]) -> str:
    """`peers`: this node, its neighbours, then the whole ring in order (RTTs by member key),
    each member with its key's fingerprint, so people can tell two hosts apart by their keys."""
    prev, nxt = view.prev_of(me.key), view.next_of(me.key)
    lines = [
        f"this node: id {view.position(me.key)} {me.name!r} {me.host}:{me.port}"
        f" (leader: {view.leader.name!r})",
        "previous:  " + (_member_line(view, prev, rtts.get(prev.key)) if prev else "none (alone)"),
        "next:      " + (_member_line(view, nxt, rtts.get(nxt.key)) if nxt else "none (alone)"),
        f"ring: {len(view.members)} node(s), version {view.version}",
    ]
    for position, member in enumerate(view.members):
        mark = "*" if member.key == me.key else " "
        rtt = "" if member.key == me.key else "  " + human_rtt(rtts.get(member.key))
        where = f"{member.host}:{member.port}"
        lines.append(
            f" {mark}{position:3d}  {member.name}  {where}  key {fingerprint(member.key)}{rtt}"
        )
    return "\n".join(lines)


def files_text(summary: Mapping[str, tuple[int, int]], own: str) -> str:
    """`files`: per owner folder, how many files and bytes this node holds."""
    if not summary:
        return "no files yet"
    lines = []
    for owner in sorted(summary):
        count, size = summary[owner]
        mine = "  (this node)" if owner == own else ""
        lines.append(f"{owner}: {count} file(s), {human_size(size)}{mine}")
    return "\n".join(lines)


def holders_text(
    title: str,
    holders: Sequence[tuple[Member, int | None, float | None]],
    me: str,
    notes: Mapping[str, str] | None = None,
) -> str:
    """`who-has` for one file: its title line, then each holder (member, ring id, rtt).

    The asking node (key `me`) is marked as such rather than shown with no round trip; a
    holder with a note (by member key: how it is known, when not from the index) shows it.
    """
    if not holders:
        return f"{title}\n  no holder known"
    notes = notes or {}
    lines = [title]
    for member, position, rtt in holders:
        where = "?" if position is None else str(position)
        near = "(this node)" if member.key == me else human_rtt(rtt)
        note = f"  [{notes[member.key]}]" if member.key in notes else ""
        lines.append(f"  {member.name}  {member.host}:{member.port}  id {where}  {near}{note}")
    return "\n".join(lines)
