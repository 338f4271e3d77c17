"""camera_sync in its own process, fed by a camera peer process, observed by this test.

The peer writes the frame number into every pixel and joint position, so a set that mixes
frames, a reordered joint or a converted image shows up in the Observation itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES

pytestmark = pytest.mark.ros

PEER = Path(__file__).resolve().parent / "ros_peers" / "camera_stream_peer.py"
TIMEOUT_S = 30.0
RATE_HZ = 30.0


def spin_until(node, predicate, timeout: float = TIMEOUT_S) -> bool:
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.02)
    return predicate()


class Harness:
    """camera_sync started under a unique name and topic prefix; collects its outputs."""

    def __init__(self, spawn_peer, tag: str, **parameters: object) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy

        from wav_interfaces.msg import Observation

        self.spawn_peer = spawn_peer
        self.prefix = f"/{tag}"
        self.node_name = f"camera_sync_{tag}"
        topics = ",".join(f"{self.prefix}/{name}/image_raw" for name in CAMERA_NAMES)
        parameters = {
            "camera_topics": f"[{topics}]",
            "joint_states_topic": f"{self.prefix}/joint_states",
            "observation_topic": f"{self.prefix}/observation",
            "diagnostics_period": 0.25,
            **parameters,
        }
        arguments = ["--ros-args", "-r", f"__node:={self.node_name}"]
        for name, value in parameters.items():
            arguments += ["-p", f"{name}:={value}"]
        spawn_peer("-m", "wav_ros.nodes.camera_sync", *arguments)

        self.node = Node(f"camera_sync_test_{tag}")
        self.observations: list[Observation] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.reports: list[dict[str, dict[str, str]]] = []  # every report, status by name
        self.node.create_subscription(
            Observation,
            f"{self.prefix}/observation",
            self.observations.append,
            QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE),
        )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        assert spin_until(
            self.node, lambda: self.node.count_publishers(f"{self.prefix}/observation") > 0
        ), "camera_sync's observation publisher never appeared"

    def _on_diagnostics(self, message) -> None:
        report = {
            status.name.split(": ", 1)[1]: {
                "level": str(int.from_bytes(status.level, "little")),
                **{item.key: item.value for item in status.values},
            }
            for status in message.status
            if status.name.startswith(f"/{self.node_name}: ")
        }
        if report:
            self.reports.append(report)
            self.diagnostics = report

    def quiet(self) -> bool:
        """True once two successive reports count the same messages: nothing is in flight."""
        if len(self.reports) < 2:
            return False
        before, after = self.reports[-2], self.reports[-1]
        return all(before[name].get("received") == after[name].get("received") for name in after)

    def stream(self, *peer_arguments: str) -> None:
        """Run the camera peer to its last frame, spinning meanwhile; then drain for 1 s."""
        peer = self.spawn_peer(str(PEER), "--prefix", self.prefix, *peer_arguments)
        done = []

        def peer_done() -> bool:
            while not peer.lines.empty():
                line = peer.lines.get()
                peer.output.append(line)
                done.append("done" in line)
            return any(done)

        assert spin_until(self.node, peer_done), f"peer never finished:\n{''.join(peer.output)}"

    def value(self, status: str, key: str) -> int:
        return int(self.diagnostics.get(status, {}).get(key, -1))


@pytest.fixture
def harness_factory(ros_context, spawn_peer):
    harnesses: list[Harness] = []

    def make(tag: str, **parameters: object) -> Harness:
        harness = Harness(spawn_peer, tag, **parameters)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.node.destroy_node()


def frame_of(observation) -> int:
    """The peer's frame number carried by every part of the observation; fails if they differ."""
    from wav_ros.nodes.image_codec import image_to_array

    joint_frames = {
        round(position - JOINT_NAMES.index(name) / 100)
        for name, position in zip(
            observation.joint_state.name, observation.joint_state.position, strict=True
        )
    }
    image_values = {
        int(v) for image in observation.images for v in np.unique(image_to_array(image))
    }
    assert len(joint_frames) == 1 and len(image_values) == 1, (joint_frames, image_values)
    frame = joint_frames.pop()
    assert image_values.pop() == frame % 256
    return frame


def test_sets_keep_each_frame_together_under_jitter_shuffling_and_gaps(harness_factory):
    frames, skip_every = 45, 9
    harness = harness_factory("sync", queue_size=5, slop=0.01)
    harness.stream(
        "--frames", str(frames), "--rate", str(RATE_HZ), "--jitter", "0.003",
        "--skip-camera", "1", "--skip-every", str(skip_every),
    )  # fmt: skip
    skipped = {k for k in range(frames) if k % skip_every == skip_every - 1}
    expected, gaps = frames - len(skipped), len(skipped)
    sent = {name: frames for name in (*CAMERA_NAMES, "joint_states")}
    sent["cam_left_wrist"] -= gaps

    def transport_losses() -> int:
        """Messages the peer sent that camera_sync never received (best-effort QoS)."""
        return sum(
            count - harness.value(f"input {name}", "received") for name, count in sent.items()
        )

    def settled() -> bool:
        # The other inputs of each gap can only complete a stale set: once older than
        # max_age + slop they are pruned and counted as incomplete.
        summary = harness.diagnostics.get("synchronisation", {})
        return (
            harness.quiet()
            and summary.get("observations_published") == str(len(harness.observations))
            and harness.value("synchronisation", "drops_incomplete")
            >= 3 * gaps - transport_losses()
        )

    assert spin_until(harness.node, settled), harness.diagnostics
    seen = [frame_of(observation) for observation in harness.observations]
    # Sets leave in completion order (a late message may complete frame k after k + 1).
    assert len(seen) == len(set(seen)), f"a frame was published twice: {seen}"
    assert not set(seen) & skipped, "a set was completed with another frame's image"
    # Every set not published is explained by a message lost on the way or a stale set.
    stale = harness.value("synchronisation", "drops_stale")
    assert expected - len(seen) <= transport_losses() + stale, (seen, harness.diagnostics)
    assert len(seen) > expected // 2, f"only {len(seen)} of {expected} sets: {seen}"
    for observation in harness.observations:
        assert list(observation.camera_names) == list(CAMERA_NAMES)
        assert [image.encoding for image in observation.images] == ["rgb8", "bgr8", "mono8"]
        assert list(observation.joint_state.name) == list(JOINT_NAMES)
        assert observation.header.stamp == observation.joint_state.header.stamp
        assert observation.header.frame_id == "base_link"
    assert harness.diagnostics["synchronisation"]["drops_bad_encoding"] == "0"
    summaries = [report["synchronisation"] for report in harness.reports]
    streaming = [s for s in summaries if float(s["observation_rate_hz"]) > 0]
    assert streaming, "no report while sets were published"
    assert all(0 <= float(s["sync_lag_p50_ms"]) <= float(s["sync_lag_max_ms"]) for s in streaming)


def test_unsupported_encodings_and_missing_joints_are_refused_and_counted(harness_factory):
    frames = 15
    harness = harness_factory("refusals")
    harness.stream(
        "--frames", str(frames), "--encodings", "rgb8,16UC1,mono8", "--omit-joint", "right_gripper"
    )  # fmt: skip

    def all_refusals_reported() -> bool:
        counts = [
            (harness.value(f"input {name}", "received"), harness.value(f"input {name}", reason))
            for name, reason in [
                ("cam_left_wrist", "drops_bad_encoding"),
                ("joint_states", "drops_missing_joints"),
            ]
        ]
        # Best effort may lose some at start-up or under load: what arrived must all be refused.
        return all(received >= frames // 3 and refused == received for received, refused in counts)

    assert spin_until(harness.node, all_refusals_reported), harness.diagnostics
    assert harness.observations == [], "a set was completed without a refused input"
    assert harness.value("input cam_high", "drops_bad_encoding") == 0
    summary = harness.diagnostics["synchronisation"]
    assert summary["observations_published"] == "0"
    assert any(report["synchronisation"]["level"] == "1" for report in harness.reports)  # WARN
    assert summary["drops_bad_encoding"] == harness.diagnostics["input cam_left_wrist"]["received"]
    assert summary["drops_missing_joints"] == harness.diagnostics["input joint_states"]["received"]


def test_stale_sets_are_dropped_and_counted(harness_factory):
    frames = 15
    harness = harness_factory("stale", max_age=0.5)
    harness.stream("--frames", str(frames), "--stamp-offset", "-2.0")
    assert spin_until(
        harness.node, lambda: harness.value("synchronisation", "drops_stale") >= frames // 3
    ), harness.diagnostics
    assert harness.observations == []
    assert harness.diagnostics["synchronisation"]["observations_published"] == "0"
