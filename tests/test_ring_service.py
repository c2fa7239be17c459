"""One or two ring services on 127.0.0.1: what each request gets in each state, and the edges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ring.errors import LocalProtocolError, PeerUnreachable, Refused, RemoteError
from ring.membership import Member, View
from ring.messages import (
    Fail,
    Hello,
    HelloOk,
    Join,
    JoinOk,
    Leave,
    Merge,
    Ping,
    Pong,
    Redirect,
)
from ring.service import RingService
from ring.status import Status
from ring.wire import Connection, FrameServer, Message
from tests.credentials import member, member_door
from tests.helpers_ring import Cluster, whole
from tests.waiting import wait_for
from tests.wire_client import DOOR, KEY, request


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    made = Cluster(heartbeat=0.1)
    yield made
    await made.close()


def stranger(port: int = 1) -> Member:
    """A node that is not in the ring: the test's own client (its JOIN names its own key)."""
    return Member(KEY, "x", "127.0.0.1", port)


async def ask_code(
    svc_address: tuple[str, int], msg: Join | Ping | Hello | Merge | Leave | Fail
) -> str:
    with pytest.raises(RemoteError) as info:
        await request(*svc_address, msg, 2)
    return info.value.code


class TestBeforeAndAfter:
    async def test_a_node_in_no_ring_refuses_ring_requests(self, cluster: Cluster) -> None:
        svc = await cluster.node("idle")
        address = svc.me.address
        assert await ask_code(address, Join(stranger().to_wire())) == "not_member"
        assert await ask_code(address, Ping("k", "r", 1)) == "not_member"
        assert await ask_code(address, Hello("k", "r", "k", "127.0.0.1", 1, 1)) == "not_member"
        assert await ask_code(address, Fail("k", [])) == "not_member"

    async def test_alone_a_node_founds_a_ring_as_node_0(self, cluster: Cluster) -> None:
        svc = await cluster.node("solo")
        await svc.start([("127.0.0.1", 1)])
        assert svc.status is Status.MEMBER and svc.my_id == 0
        assert svc.view.members == (svc.me,) and svc.prev is None and svc.next is None

    async def test_starting_twice_is_our_bug(self, cluster: Cluster) -> None:
        svc = await cluster.node("twice")
        await svc.start()
        with pytest.raises(LocalProtocolError):
            await svc.start()

    async def test_a_lone_node_leaves_and_then_refuses(self, cluster: Cluster) -> None:
        svc = await cluster.node("lone")
        await svc.start()
        await svc.leave()
        assert svc.status is Status.LEFT
        assert await ask_code(svc.me.address, Ping("k", "r", 1)) == "not_member"

    async def test_a_crashed_node_answers_nothing(self, cluster: Cluster) -> None:
        svc = await cluster.node("dead")
        await svc.start()
        await svc.crash()
        await svc.crash()
        with pytest.raises(PeerUnreachable):
            await request(*svc.me.address, Ping("k", "r", 1), 2)


class TestRequests:
    async def test_join_at_a_member_is_redirected_to_the_leader(self, cluster: Cluster) -> None:
        leader, member = await cluster.node("a"), await cluster.node("b")
        await leader.start()
        await member.start([leader.me.address])
        reply = await request(*member.me.address, Join(stranger().to_wire()), 2)
        assert reply == Redirect(leader.me.key, *leader.me.address)

    async def test_join_is_idempotent_for_the_same_member(self, cluster: Cluster) -> None:
        leader = await cluster.node("a")
        await leader.start()
        first = await request(*leader.me.address, Join(stranger(9).to_wire()), 2)
        again = await request(*leader.me.address, Join(stranger(9).to_wire()), 2)
        assert isinstance(first, JoinOk) and first == again
        assert View.from_wire(again.view).version == 2

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"key": "k", "name": "n", "host": "h", "port": 70000},
            {"key": 1, "name": "n", "host": "h", "port": 1},
        ],
    )
    async def test_a_bad_joiner_is_the_peers_fault(
        self, cluster: Cluster, body: dict[str, object]
    ) -> None:
        leader = await cluster.node("a")
        await leader.start()
        assert await ask_code(leader.me.address, Join(body)) == "bad_request"

    async def test_a_joiner_with_the_leaders_key_is_refused(self, cluster: Cluster) -> None:
        leader = await cluster.node("a")
        await leader.start()
        assert await ask_code(leader.me.address, Join(leader.me.to_wire())) == "bad_request"

    async def test_pong_carries_the_view_only_when_the_pinger_needs_it(
        self, cluster: Cluster
    ) -> None:
        leader = await cluster.node("a")
        await leader.start()
        view = leader.view
        fresh = await request(
            *leader.me.address, Ping(leader.me.key, view.ring_id, view.version), 2
        )
        assert isinstance(fresh, Pong) and fresh.view is None
        stale = await request(*leader.me.address, Ping(leader.me.key, view.ring_id, 0), 2)
        assert isinstance(stale, Pong) and stale.view == view.to_wire()
        outsider = await request(*leader.me.address, Ping("other", view.ring_id, view.version), 2)
        assert isinstance(outsider, Pong) and outsider.view == view.to_wire()

    async def test_merge_towards_a_younger_ring_is_refused(self, cluster: Cluster) -> None:
        leader = await cluster.node("a")
        await leader.start()
        younger = "9" * 20 + "-z"
        assert await ask_code(leader.me.address, Merge(younger, "z", "127.0.0.1", 1)) == "no_merge"
        same_ring_later_leader = Merge(leader.view.ring_id, leader.me.key + "z", "127.0.0.1", 1)
        assert await ask_code(leader.me.address, same_ring_later_leader) == "no_merge"
        reply = await request(*leader.me.address, Hello(KEY, younger, "z", "127.0.0.1", 1, 4), 2)
        assert reply == HelloOk(leader.view.ring_id, leader.me.key, *leader.me.address, 1)
        assert leader.status is Status.MEMBER

    async def test_leave_names_self_is_the_peers_fault(self, cluster: Cluster) -> None:
        leader = await cluster.node("a")
        await leader.start()
        assert await ask_code(leader.me.address, Leave(leader.me.key)) == "bad_request"


class TestNameOf:
    async def test_a_proven_key_is_named_only_while_it_is_another_member(
        self, cluster: Cluster
    ) -> None:
        leader, other = await cluster.node("a"), await cluster.node("b")
        await leader.start()
        await other.start([leader.me.address])
        await wait_for(lambda: whole([leader, other]), 3)
        assert leader.name_of(other.me.key) == "b"
        assert leader.name_of(leader.me.key) is None  # itself: no other member
        assert leader.name_of("") is None and leader.name_of(KEY) is None
        await other.leave()
        await wait_for(lambda: len(leader.view.members) == 1, 3)
        assert leader.name_of(other.me.key) is None


class TestRestart:
    async def test_a_restarted_node_with_a_new_port_takes_its_new_place(
        self, cluster: Cluster
    ) -> None:
        leader, old = await cluster.node("a"), await cluster.node("b")
        await leader.start()
        await old.start([leader.me.address])
        await cluster.kill(old)
        again = await cluster.node("b", key=old.me.key)
        assert again.me.port != old.me.port
        await again.start([leader.me.address])
        await wait_for(lambda: whole([leader, again]), 3)
        assert again.my_id == 1


class TestHostilePeers:
    async def test_a_bad_view_in_a_pong_is_logged_and_the_liar_cut_out(
        self, cluster: Cluster, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def lie(msg: Message, conn: Connection) -> Message:
            return Pong("liar", "another ring", 1, {"ring_id": "r", "version": 1, "members": "all"})

        liar = FrameServer("127.0.0.1", 0, door=DOOR)
        liar.route(Ping, lie)
        port = await liar.start()
        try:
            leader = await cluster.node("a")
            await leader.start()
            joined = await request(
                *leader.me.address, Join(Member(KEY, "l", "127.0.0.1", port).to_wire()), 2
            )
            assert isinstance(joined, JoinOk)
            await wait_for(lambda: leader.view.keys == {leader.me.key}, 5)
            assert any("bad view in PONG" in r.getMessage() for r in caplog.records)
        finally:
            await liar.close()

    async def test_another_node_answering_at_a_members_address_does_not_keep_it_alive(
        self, cluster: Cluster
    ) -> None:
        leader = await cluster.node("a")

        async def impostor(msg: Message, conn: Connection) -> Message:
            return Pong("someone else", leader.view.ring_id, leader.view.version)

        other = FrameServer("127.0.0.1", 0, door=member_door())
        other.route(Ping, impostor)
        port = await other.start()
        try:
            await leader.start()
            ghost = Member(KEY, "g", "127.0.0.1", port)
            assert isinstance(await request(*leader.me.address, Join(ghost.to_wire()), 2), JoinOk)
            await wait_for(lambda: leader.view.keys == {leader.me.key}, 5)
        finally:
            await other.close()

    async def test_a_new_node_at_an_old_nodes_address_replaces_it(self, cluster: Cluster) -> None:
        leader, old = await cluster.node("a"), await cluster.node("b")
        await leader.start()
        await old.start([leader.me.address])
        await cluster.kill(old)
        other = member()
        server = FrameServer("127.0.0.1", old.me.port, door=other.door())
        await server.start()
        reborn_key = other.key
        me = Member(reborn_key, "reborn", "127.0.0.1", old.me.port)
        reborn = RingService(server, me, heartbeat=0.1)
        cluster.nodes.append((server, reborn))
        await reborn.start([leader.me.address])
        assert [m.key for m in leader.view.members] == [leader.me.key, reborn_key]
        await wait_for(lambda: whole([leader, reborn]), 3)


class TestLeavingEarly:
    async def test_leave_before_start_or_twice_does_nothing(self, cluster: Cluster) -> None:
        svc = await cluster.node("a")
        await svc.leave()
        assert svc.status.value == "idle"
        await svc.start()
        await svc.leave()
        await svc.leave()
        assert svc.status is Status.LEFT

    async def test_leave_during_a_slow_start_stops_it(self, cluster: Cluster) -> None:
        async def busy(msg: Message, conn: Connection) -> Message:
            raise Refused("leaving", "come back later")

        stuck = FrameServer("127.0.0.1", 0, door=member_door())
        stuck.route(Join, busy)
        port = await stuck.start()
        try:
            svc = await cluster.node("a")
            starting = asyncio.create_task(svc.start([("127.0.0.1", port)]))
            await wait_for(lambda: svc.status is Status.JOINING, 2)
            await svc.leave()
            await asyncio.wait_for(starting, 2)
            assert svc.status is Status.LEFT
        finally:
            await stuck.close()
