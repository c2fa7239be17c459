"""HolderStorage: merged writes, expiry on an injected clock, no republishing."""

from __future__ import annotations

from dht.records import Entry
from dht.storage import HolderStorage

KEY = bytes(range(20))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wire(stamp: float, present: bool = True, remaining: float = 60.0) -> list[object]:
    return ["127.0.0.1", 9000, stamp, present, remaining]


class TestHolderStorage:
    def test_writes_from_many_holders_are_merged_not_replaced(self) -> None:
        storage = HolderStorage(ttl=60.0, clock=FakeClock())
        for i in range(5):
            storage[KEY] = {f"h{i}": wire(1.0)}
        assert set(storage[KEY]) == {f"h{i}" for i in range(5)}

    def test_entries_expire_on_the_injected_clock(self) -> None:
        clock = FakeClock()
        storage = HolderStorage(ttl=60.0, clock=clock)
        storage[KEY] = {"a": wire(1.0, remaining=10.0), "b": wire(1.0, remaining=30.0)}
        clock.now += 10.0
        assert set(storage[KEY]) == {"b"}
        clock.now += 20.0
        assert storage.get(KEY) is None
        assert list(storage) == []

    def test_read_reports_remaining_lifetime(self) -> None:
        clock = FakeClock()
        storage = HolderStorage(ttl=60.0, clock=clock)
        storage.merge(KEY, {"a": Entry("h", 1, 1.0, True, clock.now + 60.0)})
        clock.now += 45.0
        assert storage[KEY]["a"][4] == 15.0

    def test_withdrawal_hides_holder_but_stays_as_tombstone(self) -> None:
        storage = HolderStorage(ttl=60.0, clock=FakeClock())
        storage[KEY] = {"a": wire(1.0)}
        storage[KEY] = {"a": wire(2.0, present=False)}
        storage[KEY] = {"a": wire(1.5)}
        assert storage[KEY]["a"][3] is False

    def test_cap_is_enforced(self) -> None:
        storage = HolderStorage(ttl=60.0, clock=FakeClock(), limit=3)
        for i in range(5):
            storage[KEY] = {f"h{i}": wire(1.0, remaining=10.0 + i)}
        assert set(storage[KEY]) == {"h2", "h3", "h4"}

    def test_malformed_value_is_ignored(self) -> None:
        storage = HolderStorage(ttl=60.0, clock=FakeClock())
        storage[KEY] = b"a stock store value"  # type: ignore[assignment]
        assert storage.get(KEY) is None

    def test_storing_nodes_never_republish(self) -> None:
        clock = FakeClock()
        storage = HolderStorage(ttl=60.0, clock=clock)
        storage[KEY] = {"a": wire(1.0)}
        clock.now += 50.0
        assert storage.iter_older_than(0) == []
