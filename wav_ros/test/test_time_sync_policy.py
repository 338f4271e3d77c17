"""The approximate time policy of message_filters, on deterministic streams.

Each expected output is worked out by hand from the rule in `time_sync`'s docstring; where
message_filters is importable, both implementations are also fed the same streams.
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wav_ros.nodes.time_sync import (
    ApproximateTimeSynchronizer,
    MessageFiltersSynchronizer,
    create_synchronizer,
)

MS = 1_000_000  # nanoseconds
HAS_MESSAGE_FILTERS = importlib.util.find_spec("message_filters") is not None


@dataclass
class Recorder:
    """A synchroniser whose sets and evictions are recorded as message labels."""

    num_inputs: int
    queue_size: int = 10
    slop: float = 0.01
    implementation: type = ApproximateTimeSynchronizer
    sets: list[tuple] = field(default_factory=list)
    evicted: list[tuple[int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sync = self.implementation(
            self.num_inputs,
            self.queue_size,
            self.slop,
            lambda messages: self.sets.append(tuple(m.label for m in messages)),
            lambda index, stamp, message: self.evicted.append((index, stamp, message.label)),
        )

    def add(self, index: int, stamp_ns: int, label: str | None = None) -> bool:
        return self.sync.add(index, stamp_ns, Stamped.at(stamp_ns, label or f"{index}@{stamp_ns}"))


@dataclass
class Header:
    stamp: object


@dataclass
class Stamped:
    """A message with a header stamp (message_filters reads it) and a label to recognise it."""

    header: Header
    label: str

    @classmethod
    def at(cls, stamp_ns: int, label: str) -> Stamped:
        from builtin_interfaces.msg import Time

        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        return cls(Header(Time(sec=sec, nanosec=nanosec)), label)


IMPLEMENTATIONS = [
    ApproximateTimeSynchronizer,
    pytest.param(
        MessageFiltersSynchronizer,
        marks=pytest.mark.skipif(
            not HAS_MESSAGE_FILTERS,
            reason="message_filters is not installable here (not on PyPI); runs where ROS 2 has it",
        ),
    ),
]


@pytest.fixture(params=IMPLEMENTATIONS, ids=["own", "message_filters"])
def make(request):
    """Recorder factory for each implementation: the hand-derived expectations hold for both."""
    return lambda *args, **kwargs: Recorder(*args, implementation=request.param, **kwargs)


def test_policy_is_validated():
    with pytest.raises(ValueError, match="num_inputs"):
        ApproximateTimeSynchronizer(1, 10, 0.01, print)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSynchronizer(2, 0, 0.01, print)
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSynchronizer(2, 10, 0.0, print)
    recorder = Recorder(2)
    with pytest.raises(ValueError, match="input index 2"):
        recorder.sync.add(2, 0, "x")
    with pytest.raises(TypeError, match="stamp_ns"):
        recorder.sync.add(0, 0.5, "x")


def test_a_set_is_emitted_by_the_message_that_completes_it(make):
    recorder = make(3)
    assert not recorder.add(0, 100 * MS, "a")
    assert not recorder.add(2, 101 * MS, "c")
    assert recorder.sets == []
    assert recorder.add(1, 99 * MS, "b")
    assert recorder.sets == [("a", "b", "c")]
    assert [recorder.sync.queued(i) for i in range(3)] == [[], [], []]


def test_jittered_shuffled_30hz_streams_group_each_frame_once(make):
    rng = random.Random(7)
    recorder = make(4, queue_size=5, slop=0.01)
    for frame in range(60):
        arrivals = [
            (index, round((1 + frame / 30 + rng.uniform(-0.003, 0.003)) * 1e9))
            for index in range(4)
        ]
        rng.shuffle(arrivals)
        for index, stamp in arrivals:
            recorder.add(index, stamp, f"{frame}")
    # Frames are 33 ms apart and jitter ±3 ms: no cross-frame set can be within 10 ms.
    assert recorder.sets == [(f"{frame}",) * 4 for frame in range(60)]
    assert recorder.evicted == []


def test_spread_must_be_strictly_below_slop(make):
    recorder = make(2, slop=0.01)
    recorder.add(0, 0, "a")
    assert not recorder.add(1, 10 * MS, "b")  # a candidate (|Δ| <= slop) but spread == slop
    assert recorder.add(1, 10 * MS - 1, "c")
    assert recorder.sets == [("a", "c")]
    assert recorder.sync.queued(1) == [10 * MS]


def test_closest_candidate_is_taken_and_the_rest_stay_queued(make):
    recorder = make(2)
    recorder.add(0, 0, "far")
    recorder.add(0, 6 * MS, "near")
    assert recorder.add(1, 5 * MS, "new")
    assert recorder.sets == [("near", "new")]
    assert recorder.sync.queued(0) == [0]


def test_combinations_are_tried_in_product_order_not_by_tightest_spread(make):
    recorder = make(3)
    recorder.add(0, -3 * MS + 100 * MS, "a-3")
    recorder.add(0, 6 * MS + 100 * MS, "a+6")
    recorder.add(1, -7 * MS + 100 * MS, "b-7")
    recorder.add(1, 5 * MS + 100 * MS, "b+5")
    # Candidates by closeness: a: -3, +6; b: +5, -7. (a-3, b+5) spreads 8 ms < 10: taken,
    # although (a+6, b+5) would spread only 6 ms.
    assert recorder.add(2, 100 * MS, "c")
    assert recorder.sets == [("a-3", "b+5", "c")]


def test_the_first_other_input_varies_slowest(make):
    recorder = make(3)
    base = 100 * MS
    for index, offset, label in [(0, -2, "a-2"), (0, 6, "a+6"), (1, 8, "b+8"), (1, -9, "b-9")]:
        recorder.add(index, base + offset * MS, label)
    # (a-2, b+8) spreads 10 ms: refused. Next in product order is (a-2, b-9), spread 9 ms,
    # before (a+6, b+8), spread 8 ms.
    assert recorder.add(2, base, "c")
    assert recorder.sets == [("a-2", "b-9", "c")]


@pytest.mark.parametrize("first", ["+5", "-5"])
def test_equally_close_candidates_keep_arrival_order(make, first):
    second = "-5" if first == "+5" else "+5"
    recorder = make(2)
    for label in (first, second):
        recorder.add(0, 100 * MS + int(label) * MS, label)
    recorder.add(1, 100 * MS, "new")
    assert recorder.sets == [(first, "new")]


def test_queue_overflow_evicts_the_oldest_stamp_not_the_oldest_arrival(make):
    recorder = make(2, queue_size=2)
    for stamp in (30, 10, 20):
        recorder.add(0, stamp * MS, f"s{stamp}")
    assert recorder.evicted == [(0, 10 * MS, "s10")]
    assert recorder.sync.queued(0) == [20 * MS, 30 * MS]


def test_a_new_message_older_than_a_full_queue_is_evicted_and_completes_nothing(make):
    recorder = make(2, queue_size=2)
    recorder.add(1, 5 * MS, "b")
    recorder.add(0, 20 * MS, "a20")
    recorder.add(0, 30 * MS, "a30")
    assert not recorder.add(0, 4 * MS, "a4")  # b is within slop, but a4 left at once
    assert recorder.sets == []
    assert recorder.evicted == [(0, 4 * MS, "a4")]


def test_a_repeated_stamp_replaces_the_queued_message_and_reports_it(make):
    recorder = make(2)
    recorder.add(0, 10 * MS, "first")
    recorder.add(0, 10 * MS, "second")
    assert recorder.evicted == [(0, 10 * MS, "first")]
    recorder.add(1, 10 * MS, "b")
    assert recorder.sets == [("second", "b")]


def test_out_of_order_arrivals_still_complete_their_sets(make):
    recorder = make(2)
    recorder.add(0, 0, "a0")
    recorder.add(1, 100 * MS, "b100")
    recorder.add(0, 100 * MS, "a100")
    recorder.add(1, 0, "b0")  # late
    assert recorder.sets == [("a100", "b100"), ("a0", "b0")]


def test_a_gap_in_one_stream_leaves_the_others_queued_until_evicted(make):
    recorder = make(2, queue_size=3)
    period = 33 * MS
    for frame in range(8):
        recorder.add(0, frame * period, f"a{frame}")
        if frame != 2:
            recorder.add(1, frame * period, f"b{frame}")
    assert recorder.sets == [(f"a{k}", f"b{k}") for k in range(8) if k != 2]
    assert recorder.sync.queued(0) == [2 * period]  # matched messages leave; a2 waits
    assert recorder.evicted == []


def test_different_rates_pair_each_slow_message_with_a_close_fast_one(make):
    # 30 Hz against 100 Hz, slop 5 ms, arrivals in stamp order (the 30 Hz one first on ties).
    recorder = make(2, queue_size=3, slop=0.005)
    slow = [round(k * 1e9 / 30) for k in range(4)]  # 0, 33.3, 66.7, 100 ms
    fast = [10 * MS * j for j in range(11)]  # 0, 10, ..., 100 ms
    arrivals = sorted([(stamp, 0) for stamp in slow] + [(stamp, 1) for stamp in fast])
    for stamp, index in arrivals:
        recorder.add(index, stamp, f"{'sf'[index]}{stamp // MS}")
    # 66.7 finds no fast message within 5 ms until 70 arrives (and completes the set).
    assert recorder.sets == [("s0", "f0"), ("s33", "f30"), ("s66", "f70"), ("s100", "f100")]
    # With 3 places, the unmatched fast messages are pushed out oldest first.
    assert [label for _, _, label in recorder.evicted] == ["f10", "f20", "f40", "f50", "f60"]
    assert recorder.sync.queued(1) == [80 * MS, 90 * MS]


def test_prune_evicts_everything_older_than_the_threshold(make):
    recorder = make(3)
    recorder.add(0, 10 * MS, "a10")
    recorder.add(0, 50 * MS, "a50")
    recorder.add(1, 20 * MS, "b20")
    recorder.add(2, 90 * MS, "c90")
    assert recorder.sync.prune(50 * MS) == 2
    assert recorder.evicted == [(0, 10 * MS, "a10"), (1, 20 * MS, "b20")]
    assert [recorder.sync.queued(i) for i in range(3)] == [[50 * MS], [], [90 * MS]]
    assert recorder.sets == []


@settings(max_examples=200, deadline=None)
@given(
    num_inputs=st.integers(2, 4),
    queue_size=st.integers(1, 4),
    arrivals=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), max_size=40),
)
def test_every_message_ends_in_exactly_one_set_eviction_or_queue(num_inputs, queue_size, arrivals):
    recorder = Recorder(num_inputs, queue_size=queue_size, slop=0.01)
    added = []
    for number, (index, stamp_ms) in enumerate(arrivals):
        index %= num_inputs
        label = f"{index}:{stamp_ms}:{number}"
        recorder.add(index, stamp_ms * MS, label)
        added.append(label)
    in_sets = [label for labels in recorder.sets for label in labels]
    evicted = [label for _, _, label in recorder.evicted]
    queued = sum(len(recorder.sync.queued(index)) for index in range(num_inputs))
    assert len(set(in_sets + evicted)) == len(in_sets + evicted), "a message left twice"
    assert len(in_sets) + len(evicted) + queued == len(added)
    for labels in recorder.sets:
        stamps = [int(label.split(":")[1]) for label in labels]
        assert [int(label.split(":")[0]) for label in labels] == list(range(num_inputs))
        assert max(stamps) - min(stamps) < 10
    for index in range(num_inputs):
        assert len(recorder.sync.queued(index)) <= queue_size


def test_create_synchronizer_prefers_message_filters_only_when_importable():
    sync = create_synchronizer(2, 10, 0.01, print)
    expected = MessageFiltersSynchronizer if HAS_MESSAGE_FILTERS else ApproximateTimeSynchronizer
    assert type(sync) is expected
    assert type(create_synchronizer(2, 10, 0.01, print, prefer_message_filters=False)) is (
        ApproximateTimeSynchronizer
    )


def random_stream(seed: int, num_inputs: int) -> list[tuple[int, int]]:
    """Jittered 30 Hz frames with dropped, duplicated, late and extra-rate messages."""
    rng = random.Random(seed)
    arrivals = []
    for frame in range(80):
        for index in range(num_inputs):
            if rng.random() < 0.1:
                continue
            stamp = round((1 + frame / 30 + rng.uniform(-0.006, 0.006)) * 1e9)
            arrivals.append((index, stamp))
            if rng.random() < 0.05:
                arrivals.append((index, stamp))  # duplicate stamp
        if rng.random() < 0.3:
            arrivals.append((0, round((1 + frame / 30 + 0.016) * 1e9)))  # a faster input 0
    # Late deliveries: swap neighbours now and then.
    for position in range(len(arrivals) - 1):
        if rng.random() < 0.2:
            arrivals[position], arrivals[position + 1] = arrivals[position + 1], arrivals[position]
    return arrivals


@pytest.mark.skipif(
    not HAS_MESSAGE_FILTERS,
    reason="message_filters is not installable here (not on PyPI); runs where ROS 2 provides it",
)
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("num_inputs", "queue_size", "slop"), [(2, 3, 0.01), (4, 5, 0.012)])
def test_same_sets_and_evictions_as_message_filters(seed, num_inputs, queue_size, slop):
    ours = Recorder(num_inputs, queue_size, slop)
    theirs = Recorder(num_inputs, queue_size, slop, implementation=MessageFiltersSynchronizer)
    for number, (index, stamp) in enumerate(random_stream(seed, num_inputs)):
        label = f"{number}"
        assert ours.add(index, stamp, label) == theirs.add(index, stamp, label)
    assert ours.sets == theirs.sets
    assert sorted(ours.evicted) == sorted(theirs.evicted)
    assert len(ours.sets) > 20  # the streams exercise the policy, not just evictions
