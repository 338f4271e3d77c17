"""camera_sync: N camera topics + joint_states → synchronised wav_interfaces/Observation.

Sets are formed with message_filters' ApproximateTimeSynchronizer policy (message_filters
itself when installed, else `time_sync`'s implementation of the same policy). Each image's
encoding and size are validated on arrival, but pixels are not converted: the Observation
carries the original Image messages (bgr8 stays bgr8) and the model node converts with
`image_codec.image_to_array`, so the camera path never copies pixels twice.

What never becomes an Observation is counted by reason and reported on /diagnostics:
`bad_encoding` (image refused on arrival), `missing_joints` (joint state without the expected
joints), `incomplete` (a message that left its queue without a set: pushed out by queue_size
newer ones, as in message_filters, or pruned at each diagnostics tick once older than
max_age + slop, when it could only still complete a stale set) and `stale` (a complete set
whose newest stamp is older than max_age).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from wav_interfaces.msg import Observation
from wav_ros.nodes.image_codec import validate_image
from wav_ros.nodes.qos import SENSOR_DATA
from wav_ros.nodes.time_sync import NANOSECONDS_PER_SECOND, create_synchronizer
from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES

#: Drop reasons reported on /diagnostics.
DROP_REASONS: tuple[str, ...] = ("bad_encoding", "missing_joints", "incomplete", "stale")
JOINT_STATES_INPUT = "joint_states"
WARNING_THROTTLE_S = 5.0
#: Reliable KEEP_LAST history of /wav/observation: a reader may lag this many sets (~170 ms
#: at 30 Hz) before the oldest is overwritten; consumers want the latest, not a backlog.
OBSERVATION_DEPTH = 5


@dataclass(frozen=True)
class CameraSyncConfig:
    """Parameters of the camera_sync node (declared as ROS parameters of the same names)."""

    camera_names: tuple[str, ...] = CAMERA_NAMES
    """Cameras of an Observation, in order."""
    camera_topics: tuple[str, ...] = ()
    """Image topic per camera, parallel to camera_names; empty → /<name>/image_raw."""
    joint_states_topic: str = "/joint_states"
    """sensor_msgs/JointState input."""
    observation_topic: str = "/wav/observation"
    """wav_interfaces/Observation output."""
    frame_id: str = "base_link"
    """frame_id of the Observation header (the robot base)."""
    queue_size: int = 10
    """Messages kept per input while waiting for a set (message_filters' queue_size)."""
    slop: float = 0.01
    """Seconds: the largest stamp spread of a set (message_filters' slop)."""
    max_age: float = 0.5
    """Seconds: a set whose newest stamp is older than now − max_age is dropped as stale."""
    diagnostics_period: float = 1.0
    """Seconds between /diagnostics reports (rates and lags are over this window)."""
    expected_joint_names: tuple[str, ...] = JOINT_NAMES
    """Joints an Observation must carry, in this order (the joint state is reordered)."""
    prefer_message_filters: bool = True
    """Use message_filters' synchroniser when importable (else the project's own)."""

    def __post_init__(self) -> None:
        if not self.camera_names:
            raise ValueError("camera_names must name at least one camera")
        if len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names has duplicates: {list(self.camera_names)}")
        if not self.camera_topics:
            topics = tuple(f"/{name}/image_raw" for name in self.camera_names)
            object.__setattr__(self, "camera_topics", topics)
        if len(self.camera_topics) != len(self.camera_names):
            raise ValueError(
                f"camera_topics ({len(self.camera_topics)}) must be parallel to camera_names "
                f"({len(self.camera_names)})"
            )
        if len(set(self.camera_topics)) != len(self.camera_topics):
            raise ValueError(f"camera_topics has duplicates: {list(self.camera_topics)}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        for name in ("slop", "max_age", "diagnostics_period"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if not self.expected_joint_names:
            raise ValueError("expected_joint_names must name at least one joint")
        if len(set(self.expected_joint_names)) != len(self.expected_joint_names):
            raise ValueError(f"expected_joint_names has duplicates: {self.expected_joint_names}")


def stamp_to_ns(stamp) -> int:
    return stamp.sec * NANOSECONDS_PER_SECOND + stamp.nanosec


def reorder_joint_state(message: JointState, joint_names: tuple[str, ...]) -> JointState:
    """The joint state restricted to `joint_names`, in that order; ValueError when it cannot be.

    velocity and effort follow when they hold one value per name, and stay empty when empty.
    """
    count = len(message.name)
    if len(set(message.name)) != count:
        raise ValueError(f"joint state names a joint twice: {list(message.name)}")
    for field_name in ("position", "velocity", "effort"):
        size = len(getattr(message, field_name))
        if size != count and not (field_name != "position" and size == 0):
            raise ValueError(f"joint state has {count} names but {size} {field_name} values")
    index = {name: i for i, name in enumerate(message.name)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f"joint state lacks joint(s) {missing}")
    order = [index[name] for name in joint_names]

    def pick(values) -> list[float]:
        return [float(values[i]) for i in order] if len(values) else []

    return JointState(
        header=message.header,
        name=list(joint_names),
        position=pick(message.position),
        velocity=pick(message.velocity),
        effort=pick(message.effort),
    )


@dataclass(frozen=True)
class WindowReport:
    """What happened between two diagnostics reports."""

    seconds: float
    received: dict[str, int]
    drops: int
    published: int
    lags: np.ndarray
    """Seconds from each published set's stamp to its publication."""

    def rate_hz(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class SyncStatistics:
    """Counters behind /diagnostics: totals since start, and a window since the last report."""

    received: Counter = field(default_factory=Counter)
    drops: Counter = field(default_factory=Counter)
    """(reason, input) → messages dropped; stale sets are counted under input ''."""
    published: int = 0
    _window_received: Counter = field(default_factory=Counter)
    _window_drops: int = 0
    _window_published: int = 0
    _window_lags: list[float] = field(default_factory=list)
    _window_start: float = field(default_factory=time.monotonic)

    def receive(self, input_name: str) -> None:
        self.received[input_name] += 1
        self._window_received[input_name] += 1

    def drop(self, reason: str, input_name: str = "") -> None:
        self.drops[(reason, input_name)] += 1
        self._window_drops += 1

    def publish(self, lag_s: float) -> None:
        self.published += 1
        self._window_published += 1
        self._window_lags.append(lag_s)

    def drops_by_reason(self) -> dict[str, int]:
        totals = dict.fromkeys(DROP_REASONS, 0)
        for (reason, _), count in self.drops.items():
            totals[reason] += count
        return totals

    def close_window(self) -> WindowReport:
        """The window's counts, and a new window from now."""
        now = time.monotonic()
        report = WindowReport(
            seconds=now - self._window_start,
            received=dict(self._window_received),
            drops=self._window_drops,
            published=self._window_published,
            lags=np.array(self._window_lags),
        )
        self._window_start = now
        self._window_received.clear()
        self._window_drops = self._window_published = 0
        self._window_lags = []
        return report


class CameraSyncNode(Node):
    """Publishes one Observation per synchronised set of camera images and joint state."""

    def __init__(self, node_name: str = "camera_sync", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = self._declare_parameters()
        config = self.config
        self._input_names = (*config.camera_names, JOINT_STATES_INPUT)
        self._joints_index = len(config.camera_names)
        self._max_age_ns = round(config.max_age * NANOSECONDS_PER_SECOND)
        self.stats = SyncStatistics()
        self._sync = create_synchronizer(
            len(self._input_names),
            config.queue_size,
            config.slop,
            self._on_set,
            self._on_evict,
            prefer_message_filters=config.prefer_message_filters,
        )
        self._publisher = self.create_publisher(
            Observation,
            config.observation_topic,
            QoSProfile(depth=OBSERVATION_DEPTH, reliability=QoSReliabilityPolicy.RELIABLE),
        )
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        for index, topic in enumerate(config.camera_topics):
            self.create_subscription(Image, topic, partial(self._on_image, index), SENSOR_DATA)
        self.create_subscription(
            JointState, config.joint_states_topic, self._on_joint_state, SENSOR_DATA
        )
        self.create_timer(config.diagnostics_period, self._publish_diagnostics)
        cameras = dict(zip(config.camera_names, config.camera_topics, strict=True))
        self.get_logger().info(
            f"camera_sync ready: {cameras} + {config.joint_states_topic} "
            f"→ {config.observation_topic} "
            f"(slop {config.slop} s, queue {config.queue_size}, max_age {config.max_age} s, "
            f"{type(self._sync).__name__})"
        )

    def _declare_parameters(self) -> CameraSyncConfig:
        defaults = CameraSyncConfig()
        values = {}
        for name, default in vars(defaults).items():
            if name == "camera_topics":
                continue  # its default depends on camera_names
            default = list(default) if isinstance(default, tuple) else default
            values[name] = self.declare_parameter(name, default).value
        topics_default = [f"/{name}/image_raw" for name in values["camera_names"]]
        values["camera_topics"] = self.declare_parameter("camera_topics", topics_default).value
        for name in ("camera_names", "camera_topics", "expected_joint_names"):
            values[name] = tuple(values[name])
        return CameraSyncConfig(**values)

    def _on_image(self, index: int, message: Image) -> None:
        name = self._input_names[index]
        self.stats.receive(name)
        try:
            validate_image(message, source=self.config.camera_topics[index])
        except ValueError as error:
            self.stats.drop("bad_encoding", name)
            self.get_logger().warning(f"refused: {error}", throttle_duration_sec=WARNING_THROTTLE_S)
            return
        self._sync.add(index, stamp_to_ns(message.header.stamp), message)

    def _on_joint_state(self, message: JointState) -> None:
        self.stats.receive(JOINT_STATES_INPUT)
        try:
            ordered = reorder_joint_state(message, self.config.expected_joint_names)
        except ValueError as error:
            self.stats.drop("missing_joints", JOINT_STATES_INPUT)
            self.get_logger().warning(
                f"refused joint state on {self.config.joint_states_topic}: {error}",
                throttle_duration_sec=WARNING_THROTTLE_S,
            )
            return
        self._sync.add(self._joints_index, stamp_to_ns(message.header.stamp), ordered)

    def _on_evict(self, index: int, stamp_ns: int, message) -> None:
        self.stats.drop("incomplete", self._input_names[index])

    def _on_set(self, messages) -> None:
        *images, joint_state = messages
        now_ns = self.get_clock().now().nanoseconds
        newest_ns = max(stamp_to_ns(message.header.stamp) for message in messages)
        if now_ns - newest_ns > self._max_age_ns:
            self.stats.drop("stale")
            self.get_logger().warning(
                f"dropped a stale set: newest stamp {(now_ns - newest_ns) / 1e9:.3f} s old "
                f"(max_age {self.config.max_age} s)",
                throttle_duration_sec=WARNING_THROTTLE_S,
            )
            return
        observation = Observation()
        observation.header.stamp = joint_state.header.stamp
        observation.header.frame_id = self.config.frame_id
        observation.camera_names = list(self.config.camera_names)
        observation.images = images
        observation.joint_state = joint_state
        self._publisher.publish(observation)
        self.stats.publish((now_ns - stamp_to_ns(joint_state.header.stamp)) / 1e9)

    def _publish_diagnostics(self) -> None:
        # A message older than this can only be part of a stale set: drop it as incomplete.
        now_ns = self.get_clock().now().nanoseconds
        self._sync.prune(now_ns - self._max_age_ns - self._sync.policy.slop_ns)
        window = self.stats.close_window()
        report = DiagnosticArray(
            status=[self._summary_status(window), *self._input_statuses(window)]
        )
        report.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(report)

    def _summary_status(self, window: WindowReport) -> DiagnosticStatus:
        node = self.get_fully_qualified_name()
        if window.drops:
            level, message = DiagnosticStatus.WARN, f"{window.drops} drops in the last window"
        elif not window.published:
            silent = [name for name in self._input_names if not window.received.get(name)]
            level = DiagnosticStatus.WARN
            message = f"no observation in the last window; silent inputs: {silent}"
        else:
            level, message = DiagnosticStatus.OK, "synchronising"
        lags_ms = window.lags * 1e3
        status = DiagnosticStatus(
            level=level, name=f"{node}: synchronisation", message=message, hardware_id=node
        )
        status.values = [
            KeyValue(key="observations_published", value=str(self.stats.published)),
            KeyValue(key="observation_rate_hz", value=f"{window.rate_hz(window.published):.2f}"),
            KeyValue(
                key="sync_lag_p50_ms",
                value=f"{np.median(lags_ms):.2f}" if lags_ms.size else "nan",
            ),
            KeyValue(
                key="sync_lag_max_ms", value=f"{lags_ms.max():.2f}" if lags_ms.size else "nan"
            ),
            *(
                KeyValue(key=f"drops_{reason}", value=str(count))
                for reason, count in self.stats.drops_by_reason().items()
            ),
            KeyValue(key="slop_s", value=str(self.config.slop)),
            KeyValue(key="queue_size", value=str(self.config.queue_size)),
            KeyValue(key="synchronizer", value=type(self._sync).__name__),
        ]
        return status

    def _input_statuses(self, window: WindowReport) -> list[DiagnosticStatus]:
        node = self.get_fully_qualified_name()
        topics = (*self.config.camera_topics, self.config.joint_states_topic)
        statuses = []
        for name, topic in zip(self._input_names, topics, strict=True):
            rate_hz = window.rate_hz(window.received.get(name, 0))
            refusal = "missing_joints" if name == JOINT_STATES_INPUT else "bad_encoding"
            status = DiagnosticStatus(
                level=DiagnosticStatus.OK if rate_hz > 0 else DiagnosticStatus.WARN,
                name=f"{node}: input {name}",
                message=f"{rate_hz:.1f} Hz on {topic}",
                hardware_id=node,
            )
            status.values = [
                KeyValue(key="topic", value=topic),
                KeyValue(key="rate_hz", value=f"{rate_hz:.2f}"),
                KeyValue(key="received", value=str(self.stats.received[name])),
                *(
                    KeyValue(key=f"drops_{reason}", value=str(self.stats.drops[(reason, name)]))
                    for reason in (refusal, "incomplete")
                ),
            ]
            statuses.append(status)
        return statuses


def main(args: list[str] | None = None) -> None:
    """Run camera_sync until Ctrl-C or SIGTERM, on one thread: every callback touches the
    synchroniser, so more threads would only add lock contention and, on few cores, tail
    latency. (rclpy's experimental EventsExecutor was tried: it neither delivered sets nor
    stopped on SIGTERM here.)"""
    from wav_ros.nodes.spin import run_nodes

    run_nodes([CameraSyncNode], args=args, threads=1)


if __name__ == "__main__":
    main()
