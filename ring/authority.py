"""Who may tell a node which view to hold, with no sockets.

Theory of operation. Every member holds the network key, so a connection only proves that its
peer is some member (its `identity`), not that it may change our ring. Only the leader changes a
view (Rule 2 of `ring/membership.py`), so:

- a view of our ring from the leader of our current view is taken (`ACCEPT`): the leader makes
  every change, and hands the ring over, when it leaves, by sending the view without itself;
- a view of another ring is taken only from that ring's leader (`ACCEPT`), for a node that
  joins it (its UPDATE overtook the JOIN_OK it sent);
- a newer view of our ring from any other member is news to check (`CONSULT`): this node asks
  its leader (a ping; the PONG carries the leader's view if ours is stale, and that view comes
  from the leader). Only if the leader is silent does the member's view count, and only as a
  `takeover`: the member leads it, was in our view, and everyone before it there is gone (the
  old leader died and the lowest member left cut it out). A leader that is handed a takeover
  that cuts it out asks another member of that view instead, who must have it too.

So a member that is not the leader cannot make itself the leader of everyone, cut another
member out, or hand out a view of its own making while the leader lives; a view that only went
astray (a lost UPDATE) still reaches everyone, through the leader. An UPDATE may come only from
the leader of our view or of the view it carries (`may_update`). A view of another ring that
wins a merge is judged apart (`judge`'s MERGE): any member may show one, since a merge only makes
this node JOIN that ring's leader, who must then admit it.
"""

from __future__ import annotations

import enum

from ring.membership import View


class Vouch(enum.Enum):
    """What a node makes of a view some member handed it."""

    ACCEPT = "accept"
    CONSULT = "consult"
    REFUSE = "refuse"


def vouch(current: View, incoming: View, sender: str) -> Vouch:
    """Whether `sender` (a connection's identity) may hand this node `incoming`, given its
    `current` view (rules above)."""
    if incoming.ring_id != current.ring_id:
        return Vouch.ACCEPT if sender == incoming.leader.key else Vouch.REFUSE
    return Vouch.ACCEPT if sender == current.leader.key else Vouch.CONSULT


def takeover(current: View, incoming: View, sender: str) -> bool:
    """Whether `incoming` is what `sender` would send on taking over our ring: it leads it, it
    is in `current`, and every member before it in `current` is gone from `incoming`."""
    position = current.position(sender)
    if sender != incoming.leader.key or position is None:
        return False
    return not any(m.key in incoming.keys for m in current.members[:position])


def may_update(current: View, incoming: View, sender: str) -> bool:
    """Whether `sender` may push `incoming` with an UPDATE: only a leader pushes views."""
    return sender in (current.leader.key, incoming.leader.key)
