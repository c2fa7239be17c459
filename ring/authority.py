"""Who may tell a node which view to hold, with no sockets.

Theory of operation. Every member holds the network key, so a connection only proves that its
peer is some member (its `identity`), not that it may change our ring. Only the leader changes a
view (Rule 2 of `ring/membership.py`), so a view is acted on only when the member that handed
it over is one that may have made it:

- the leader of our current view: it makes every change of our ring, and when it leaves it
  hands the ring over by sending the view without itself;
- the leader of a view of another ring that holds us, while we join (its UPDATE overtook the
  JOIN_OK it sent us);
- the leader of a newer view of our ring that took over: it is in our view and every member
  before it there is gone from the new view (the old leader died, and the lowest member left
  cut it out). A member can claim that too, so it is believed only once our leader fails to
  answer a ping (`CHECK`).

Anyone else is refused: a member that is not the leader cannot make itself the leader of
everyone, cut another member out, or hand out a view of its own making. A view of another ring
that wins a merge is judged apart (`judge`'s MERGE): any member may show one, since a merge only
makes this node JOIN that ring's leader, who must then admit it.
"""

from __future__ import annotations

import enum

from ring.membership import View


class Vouch(enum.Enum):
    """Whether a view from some member may be acted on."""

    ACCEPT = "accept"
    CHECK = "check"
    REFUSE = "refuse"


def vouch(current: View, incoming: View, sender: str) -> Vouch:
    """Whether `sender` (a connection's identity) may hand this node `incoming` to install or
    to re-join by, given its `current` view (rules above)."""
    if incoming.ring_id != current.ring_id:
        return Vouch.ACCEPT if sender == incoming.leader.key else Vouch.REFUSE
    if sender == current.leader.key:
        return Vouch.ACCEPT
    if sender != incoming.leader.key:
        return Vouch.REFUSE
    position = current.position(sender)
    if position is None:
        return Vouch.REFUSE
    if any(m.key in incoming.keys for m in current.members[:position]):
        return Vouch.REFUSE
    return Vouch.CHECK
