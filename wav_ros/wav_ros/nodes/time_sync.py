"""Approximate time synchronisation of N message streams, without rclpy.

The policy is the one of message_filters' Python `ApproximateTimeSynchronizer` (ROS 2), so a
node behaves the same whether or not message_filters is installed:

- each input keeps a queue of messages keyed by stamp; a message with a stamp already queued
  replaces it; past `queue_size` entries the oldest stamp is evicted (possibly the new one);
- on each arrival, only the arriving message can complete a set: for every *other* input the
  queued stamps within `slop` of the new stamp (|Δ| <= slop) are candidates, ordered closest
  first (ties keep the queue's insertion order); when an input has none, nothing is emitted;
- the candidate combinations are tried in `itertools.product` order (the first other input
  varies slowest) and the first whose spread (max − min, the new stamp included) is strictly
  below `slop` is emitted, and its messages leave their queues;
- nothing else leaves a queue: messages older than an emitted set stay until evicted.

Unlike message_filters, evictions (and replacements) are reported (`on_evict`) so a node can
count the messages that never became part of a set. `MessageFiltersSynchronizer` offers the
same interface on top of message_filters itself, for a node to prefer when it is installed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

NANOSECONDS_PER_SECOND = 1_000_000_000

SetCallback = Callable[[Sequence[Any]], None]
EvictCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class SyncPolicy:
    """Parameters of the approximate time policy."""

    num_inputs: int
    """Number of synchronised streams (at least 2)."""
    queue_size: int
    """Messages kept per input while waiting for a set; the oldest stamp is evicted first."""
    slop: float
    """Seconds: candidates lie within slop of the new stamp; a set's spread must be below it."""

    def __post_init__(self) -> None:
        if self.num_inputs < 2:
            raise ValueError(f"num_inputs must be at least 2, got {self.num_inputs}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        if not self.slop > 0.0:
            raise ValueError(f"slop must be a positive number of seconds, got {self.slop}")

    @property
    def slop_ns(self) -> int:
        # Truncated like rclpy's Duration(seconds=slop), which message_filters compares with.
        return int(self.slop * NANOSECONDS_PER_SECOND)


class ApproximateTimeSynchronizer:
    """Groups one message per input whose stamps lie within `slop` (message_filters' policy).

    `callback(messages)` receives the messages of a set in input order. `add` is thread-safe;
    the callbacks run under the synchroniser's lock, so they must not call `add`.
    """

    def __init__(
        self,
        num_inputs: int,
        queue_size: int,
        slop: float,
        callback: SetCallback,
        on_evict: EvictCallback | None = None,
    ) -> None:
        self.policy = SyncPolicy(num_inputs=num_inputs, queue_size=queue_size, slop=slop)
        self._callback = callback
        self._on_evict = on_evict
        # Insertion-ordered: the order of arrival breaks ties between equally close stamps.
        self._queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._lock = threading.Lock()

    def add(self, index: int, stamp_ns: int, message: Any) -> bool:
        """Queue `message` of input `index` stamped `stamp_ns`; True when it completed a set."""
        if not 0 <= index < self.policy.num_inputs:
            raise ValueError(f"input index {index} outside [0, {self.policy.num_inputs})")
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int):
            raise TypeError(f"stamp_ns must be an int of nanoseconds, got {stamp_ns!r}")
        with self._lock:
            queue = self._queues[index]
            replaced = queue.get(stamp_ns)
            queue[stamp_ns] = message
            if replaced is not None:
                self._evicted(index, stamp_ns, replaced)
            while len(queue) > self.policy.queue_size:
                oldest = min(queue)
                self._evicted(index, oldest, queue.pop(oldest))
            if stamp_ns not in queue:  # the new message was the oldest of a full queue
                return False
            stamps = self._find_set(index, stamp_ns)
            if stamps is None:
                return False
            messages = [self._queues[i].pop(stamp) for i, stamp in enumerate(stamps)]
            self._callback(messages)
            return True

    def _evicted(self, index: int, stamp_ns: int, message: Any) -> None:
        if self._on_evict is not None:
            self._on_evict(index, stamp_ns, message)

    def _find_set(self, index: int, stamp_ns: int) -> list[int] | None:
        """Stamps (one per input) of the first set the new message completes, or None."""
        slop_ns = self.policy.slop_ns
        candidates: list[list[int]] = []
        for other, queue in enumerate(self._queues):
            if other == index:
                continue
            near = [stamp for stamp in queue if abs(stamp - stamp_ns) <= slop_ns]
            if not near:
                return None
            candidates.append(sorted(near, key=lambda stamp: abs(stamp - stamp_ns)))
        for combination in itertools.product(*candidates):
            stamps = [*combination[:index], stamp_ns, *combination[index:]]
            if max(stamps) - min(stamps) < slop_ns:
                return stamps
        return None

    def prune(self, older_than_ns: int) -> int:
        """Evict (and report) every queued message stamped before `older_than_ns`.

        Not part of message_filters' policy, where an unmatched message waits until queue_size
        newer ones push it out: a node calls this to drop messages that can no longer be
        part of a usable set. Returns how many were evicted.
        """
        with self._lock:
            return _prune_queues(self._queues, older_than_ns, self._evicted)

    def queued(self, index: int) -> list[int]:
        """Stamps waiting in input `index`'s queue, oldest first (for tests and diagnostics)."""
        with self._lock:
            return sorted(self._queues[index])


def _prune_queues(
    queues: Sequence[dict[int, Any]], older_than_ns: int, evicted: EvictCallback
) -> int:
    count = 0
    for index, queue in enumerate(queues):
        for stamp in sorted(stamp for stamp in queue if stamp < older_than_ns):
            evicted(index, stamp, queue.pop(stamp))
            count += 1
    return count


class MessageFiltersSynchronizer:
    """The `ApproximateTimeSynchronizer` interface on top of message_filters' own implementation.

    message_filters reads each stamp from `message.header.stamp`, so `stamp_ns` must equal it.
    It does not report evictions: they are recovered by comparing the input's queue before and
    after each arrival. Raises ImportError when message_filters is not installed (or keeps its
    queues in a way this class does not know).
    """

    def __init__(
        self,
        num_inputs: int,
        queue_size: int,
        slop: float,
        callback: SetCallback,
        on_evict: EvictCallback | None = None,
    ) -> None:
        import message_filters  # lazy: it imports rclpy, and is often not installed

        self.policy = SyncPolicy(num_inputs=num_inputs, queue_size=queue_size, slop=slop)
        self._callback = callback
        self._on_evict = on_evict
        self._inputs = [message_filters.SimpleFilter() for _ in range(num_inputs)]
        self._sync = message_filters.ApproximateTimeSynchronizer(self._inputs, queue_size, slop)
        if not (hasattr(self._sync, "queues") and hasattr(self._sync, "lock")):
            # Evictions and pruning read these; a layout this class does not know is refused.
            raise ImportError("this message_filters has no ApproximateTimeSynchronizer.queues")
        self._sync.registerCallback(self._on_set)
        self._emitted: list[Any] = []
        self._lock = threading.Lock()

    def _on_set(self, *messages: Any) -> None:
        self._emitted = list(messages)
        self._callback(self._emitted)

    def add(self, index: int, stamp_ns: int, message: Any) -> bool:
        """Queue `message` of input `index`; True when it completed a set."""
        if not 0 <= index < self.policy.num_inputs:
            raise ValueError(f"input index {index} outside [0, {self.policy.num_inputs})")
        stamp = message.header.stamp
        header_ns = stamp.sec * NANOSECONDS_PER_SECOND + stamp.nanosec
        if header_ns != stamp_ns:
            raise ValueError(f"stamp_ns {stamp_ns} differs from the header stamp {header_ns}")
        with self._lock:
            queue = self._sync.queues[index]
            pending = [*queue.items(), (stamp_ns, message)]
            self._emitted = []
            self._inputs[index].signalMessage(message)
            accounted = {id(kept) for kept in queue.values()} | {id(m) for m in self._emitted}
            for pending_stamp, pending_message in pending:
                if id(pending_message) not in accounted:
                    self._evicted(index, pending_stamp, pending_message)
            return bool(self._emitted)

    def prune(self, older_than_ns: int) -> int:
        """Evict (and report) every queued message stamped before `older_than_ns`."""
        with self._lock, self._sync.lock:
            return _prune_queues(self._sync.queues, older_than_ns, self._evicted)

    def _evicted(self, index: int, stamp_ns: int, message: Any) -> None:
        if self._on_evict is not None:
            self._on_evict(index, stamp_ns, message)

    def queued(self, index: int) -> list[int]:
        """Stamps waiting in input `index`'s queue, oldest first."""
        with self._lock:
            return sorted(self._sync.queues[index])


def create_synchronizer(
    num_inputs: int,
    queue_size: int,
    slop: float,
    callback: SetCallback,
    on_evict: EvictCallback | None = None,
    *,
    prefer_message_filters: bool = True,
) -> ApproximateTimeSynchronizer | MessageFiltersSynchronizer:
    """message_filters' synchroniser when preferred and importable, else this module's own."""
    if prefer_message_filters:
        try:
            return MessageFiltersSynchronizer(num_inputs, queue_size, slop, callback, on_evict)
        except ImportError:
            pass
    return ApproximateTimeSynchronizer(num_inputs, queue_size, slop, callback, on_evict)
