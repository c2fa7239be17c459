"""Ring control from a member that may not give it: forged UPDATE, LEAVE, FAIL, HELLO, MERGE and
PONG views, sent by a member of the ring through its own door (its real identity), change
nothing. Today's nodes trusted the fields: one UPDATE made anyone the leader of everyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ring.errors import RemoteError
from ring.membership import View, remove
from ring.messages import Fail, Hello, Leave, Merge, Ping, Pong, Update
from ring.service import RingService
from ring.wire import Connection, Message
from tests.helpers_ring import Cluster, whole
from tests.waiting import wait_for
from tests.wire_client import KEY, request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OLDEST = "0" * 20 + "-x"
"""A ring id that wins every merge."""


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    made = Cluster(heartbeat=0.2)
    yield made
    await made.close()


async def ring_of_four(cluster: Cluster) -> list[RingService]:
    """a (the leader), b, c, d, in that order."""
    nodes = [await cluster.node(name) for name in "abcd"]
    await nodes[0].start()
    for svc in nodes[1:]:
        await svc.start([nodes[0].me.address])
    await wait_for(lambda: whole(nodes), 10)
    return nodes


async def forged(cluster: Cluster, sender: RingService, to: RingService, msg: Message) -> str:
    """Send `msg` from `sender`'s own door; the reply, or the error code it got."""
    door = cluster.server_of(sender).door
    try:
        reply = await door.request(*to.me.address, msg, 2)
    except RemoteError as exc:
        return exc.code
    return reply.TYPE


async def unchanged(nodes: list[RingService], view: View) -> bool:
    """After a few beats, whether every node still holds `view`."""
    await asyncio.sleep(1.0)
    return whole(nodes) and all(n.view == view for n in nodes)


class TestForgedViews:
    async def test_a_member_cannot_make_itself_the_leader(self, cluster: Cluster) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        mine = View(view.ring_id, view.version + 1, (b.me, a.me, c.me, d.me))
        assert await forged(cluster, b, c, Update(mine.to_wire())) == "OK"
        assert await unchanged(nodes, view)
        assert c.view.leader == a.me

    async def test_a_member_cannot_claim_the_leader_died(self, cluster: Cluster) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        taken = remove(view, [a.me.key])
        for victim in (c, d):
            assert await forged(cluster, b, victim, Update(taken.to_wire())) == "OK"
        assert await unchanged(nodes, view)

    async def test_a_member_cannot_push_the_leaders_view_without_someone(
        self, cluster: Cluster
    ) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        cut = remove(view, [c.me.key])
        assert await forged(cluster, b, c, Update(cut.to_wire())) == "forbidden"
        assert await forged(cluster, b, d, Update(cut.to_wire())) == "forbidden"
        assert await unchanged(nodes, view)

    async def test_a_pong_with_a_view_of_a_members_making_is_not_taken(
        self, cluster: Cluster
    ) -> None:
        a, b, c, d = await ring_of_four(cluster)
        view = a.view
        mine = View(view.ring_id, view.version + 5, (b.me, c.me, d.me, a.me))

        async def lying_pong(msg: Message, conn: Connection) -> Message:
            return Pong(b.me.key, view.ring_id, mine.version, mine.to_wire())

        cluster.server_of(b).route(Ping, lying_pong)
        await asyncio.sleep(1.0)  # a pings b (its next) every beat
        assert a.view == view and a.view.leader == a.me
        assert all(n.view == view for n in (a, c, d))


class TestForgedRequests:
    async def test_a_leave_for_someone_else_is_forbidden(self, cluster: Cluster) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        assert await forged(cluster, b, a, Leave(c.me.key)) == "forbidden"
        with pytest.raises(RemoteError) as caught:
            await request(*a.me.address, Leave(d.me.key), 2)
        assert caught.value.code == "forbidden"
        assert await unchanged(nodes, view)

    async def test_a_fail_under_another_key_or_from_outside_the_ring_is_forbidden(
        self, cluster: Cluster
    ) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        assert await forged(cluster, b, a, Fail(c.me.key, [d.me.key])) == "forbidden"
        with pytest.raises(RemoteError) as caught:
            await request(*a.me.address, Fail(KEY, [d.me.key]), 2)
        assert caught.value.code == "forbidden"
        assert await unchanged(nodes, view)

    async def test_a_hello_under_another_key_is_forbidden(self, cluster: Cluster) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        hello = Hello(c.me.key, OLDEST, "x", *b.me.address, 9)
        assert await forged(cluster, b, d, hello) == "forbidden"
        assert await unchanged(nodes, view)

    async def test_a_merge_from_a_member_that_does_not_lead_is_forbidden(
        self, cluster: Cluster
    ) -> None:
        a, b, c, d = nodes = await ring_of_four(cluster)
        view = a.view
        merge = Merge(OLDEST, "x", *b.me.address)
        assert await forged(cluster, b, c, merge) == "forbidden"
        assert await forged(cluster, b, d, merge) == "forbidden"
        assert await unchanged(nodes, view)
