"""sim_bridge: the simulated bimanual robot on the ROS graph, standing in for a real ALOHA.

Steps the MuJoCo simulation at the control rate and publishes what a real ALOHA-style setup
publishes: rgb8 images on /<camera>/image_raw (sensor-data QoS), /joint_states, /clock (sim
time, continued across resets so that it never runs backwards), plus /sim/task_status. It
follows position targets from /sim/joint_commands (sensor_msgs/JointState, the
action_executor's `sim` backend). A command that is malformed or outside the joint limits is
refused and the arms hold their last valid target.

The physics lives on one thread of its own (a ControlLoop), which keeps the 50 Hz period
independent of the executor. The cameras render on another: at each camera tick the loop hands
a copy of the state to it and steps on. Rendered on the loop (~30 ms for three CPU-rendered
cameras, 50-70 ms on a loaded machine), every camera tick overran the 20 ms period; the
simulation fell to ~37 steps/s while the executor streamed 50 commands/s, so each chunk ran in
~13 simulated steps instead of 16 (reports/training/notes.md, round 13). Images carry the stamp
of the tick they show, the same as that tick's /joint_states, like a camera's exposure time; a
frame still rendering when the next is due is replaced by the newer one, as a camera driver
drops frames (`frames_dropped`).

With `start_on_motion` (the default) an episode's physics waits, frozen at its reset state,
until a command moves the arms: the demonstrations the shipped model learnt from, and the
harness that evaluates it, start moving at the first step, before gravity settles the arms and
the objects. Stepping meanwhile (false) is what a real robot does; the shipped model solves
far fewer episodes from such settled starts (reports/training/notes.md, round 13).
"""

from __future__ import annotations

import copy
import queue
import threading

import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from wav_interfaces.msg import TaskStatus
from wav_ros.control_loop import ControlLoop
from wav_ros.nodes import conversions
from wav_ros.nodes.image_codec import array_to_image
from wav_ros.nodes.qos import LATCHED, SENSOR_DATA
from wav_ros.robot_description import CAMERA_NAMES, CONTROL_HZ, JOINT_NAMES

#: How far (rad; grippers normalised) a command must move a joint from the episode's start
#: pose to start its physics, under start_on_motion. Above float32 rounding of that pose,
#: which is what an idle executor streams back.
START_TOLERANCE = 1e-6


class SimBridgeNode(Node):
    """See the module docstring. Parameters: task, instruction, seed, max_steps, image_size,
    cameras, camera_rate, command_topic, frame_id, start_on_motion."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim_bridge", **kwargs)
        declare = self.declare_parameter
        declare("task", "transfer_cube")
        declare("instruction", "")
        declare("seed", 0)
        # The sim keeps stepping while the planner thinks (as a real robot's time passes), so
        # an episode lasts longer than the task's step budget: the runner counts executed steps.
        declare("max_steps", 6000)
        declare("image_size", [128, 128])
        declare("cameras", list(CAMERA_NAMES))
        declare("camera_rate", 10.0)
        declare("command_topic", "/sim/joint_commands")
        declare("frame_id", "world")
        # The physics of an episode starts with the first command that moves the arms, as the
        # demonstrations and the harness start; false: at once, so the scene settles first.
        declare("start_on_motion", True)

        from wav_ros.sim import make_env

        self._cameras = tuple(self.get_parameter("cameras").value)
        self._env = make_env(
            self.get_parameter("task").value,
            image_size=tuple(self.get_parameter("image_size").value),
            cameras=self._cameras,
            max_steps=self.get_parameter("max_steps").value,
            terminate_on_success=True,
        )
        self._lock = threading.Lock()
        self._episode = 0
        self._clock_offset = self._last_clock = 0.0  # /clock: sim time over all episodes
        self._target: np.ndarray | None = None
        self._done = False
        self._started = False  # physics stepping in this episode (see start_on_motion)
        self._start_pose: np.ndarray | None = None
        self._success = False
        self._progress = 0.0
        self.commands_refused = 0
        self._ticks = 0
        self._first_episode = threading.Event()
        self._render_every = max(1, round(CONTROL_HZ / self.get_parameter("camera_rate").value))
        self.frames_dropped = 0
        # At most one frame waits for the camera thread: (state copy, stamp), or None to stop.
        self._frames: queue.Queue = queue.Queue(maxsize=1)

        self._image_publishers = {
            camera: self.create_publisher(Image, f"/{camera}/image_raw", SENSOR_DATA)
            for camera in self._cameras
        }
        self._joint_publisher = self.create_publisher(JointState, "/joint_states", SENSOR_DATA)
        self._clock_publisher = self.create_publisher(Clock, "/clock", 10)
        self._status_publisher = self.create_publisher(TaskStatus, "/sim/task_status", LATCHED)
        self.create_subscription(
            JointState, self.get_parameter("command_topic").value, self._on_command, 10
        )
        self.create_service(Trigger, "/sim/reset", self._on_reset)
        self._reset_requests: list[threading.Event] = []
        self._camera_thread = threading.Thread(
            target=self._render_frames, name="sim_bridge_cameras", daemon=True
        )
        self._camera_thread.start()
        self._loop = ControlLoop(
            CONTROL_HZ,
            self._on_tick,
            name="sim_bridge",
            keep_running=self.context.ok,
            on_error=lambda error: self.get_logger().fatal(f"simulation loop stopped: {error!r}"),
        )
        self._loop.start()
        while not self._first_episode.wait(timeout=0.1):
            if not self._loop.running:
                self._loop.stop()  # re-raises why the first reset failed

    # ------------------------------------------------------------------ episode
    def _reset(self) -> str:
        instruction = self.get_parameter("instruction").value or None
        seed = int(self.get_parameter("seed").value) + self._episode
        with self._lock:
            # The new episode's physics time restarts at 0; /clock goes on one period later.
            self._clock_offset = self._last_clock + (1.0 / CONTROL_HZ if self._episode else 0.0)
            observation = self._env.reset(seed=seed, instruction=instruction, render=False)
            self._target = observation.qpos.copy()
            self._start_pose = self._target.copy()
            self._started = not self.get_parameter("start_on_motion").value
            self._done = self._success = False
            self._progress = 0.0
            self._episode += 1
            self._publish(observation, render=True)
        self._last_reset = f"episode {self._episode}: {self._env.instruction!r} (seed {seed})"
        self.get_logger().info(self._last_reset)
        return self._last_reset

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        done = threading.Event()
        with self._lock:
            self._reset_requests.append(done)
        response.success = done.wait(timeout=10.0)
        response.message = self._last_reset if response.success else "reset timed out"
        return response

    @property
    def instruction(self) -> str:
        return self._env.instruction

    # ------------------------------------------------------------------ commands
    def _on_command(self, message: JointState) -> None:
        """Accept a full 14-joint position target by name; refuse anything else, say why."""
        try:
            target = self._command_target(message)
        except ValueError as error:
            self.commands_refused += 1
            self.get_logger().warning(
                f"refused joint command: {error}; holding the last target",
                throttle_duration_sec=1.0,
            )
            return
        with self._lock:
            self._target = target

    def _command_target(self, message: JointState) -> np.ndarray:
        if len(message.name) != len(message.position):
            raise ValueError(f"{len(message.name)} names but {len(message.position)} positions")
        positions = dict(zip(message.name, message.position, strict=True))
        missing = [name for name in JOINT_NAMES if name not in positions]
        if missing:
            raise ValueError(f"missing joints {missing}")
        target = np.array([positions[name] for name in JOINT_NAMES], dtype=np.float64)
        self._env.validate_action(target)  # raises ValueError naming the offending joint
        return target

    # ------------------------------------------------------------------ stepping
    def _on_tick(self) -> None:
        """One control period: step (or, once the episode is over, just observe) and publish.

        After the episode ends the arms keep still and the cameras keep publishing, like a
        real robot between episodes, until /sim/reset starts the next one. Resets run here too,
        on the loop's thread, which owns the offscreen GL context.
        """
        if self._ticks == 0:
            self._reset()
            self._first_episode.set()
        with self._lock:
            requests, self._reset_requests = self._reset_requests, []
        if requests:
            self._reset()
            for request in requests:
                request.set()
        self._ticks += 1
        render = self._ticks % self._render_every == 0
        with self._lock:
            self._started = self._started or bool(
                np.any(np.abs(self._target - self._start_pose) > START_TOLERANCE)
            )
            if self._done or not self._started:
                self._publish(self._env.observe(render=False), render=render)
                return
            result = self._env.step(self._target, render=False)
            self._progress = float(result.reward)
            self._success = bool(result.info.get("success", False))
            self._done = bool(result.terminated or result.truncated)
            self._publish(result.observation, render=render)

    def _publish(self, observation, *, render: bool) -> None:
        """Publish this tick's state; with `render`, ask the camera thread for its images."""
        stamp = self.get_clock().now().to_msg()
        header = Header(stamp=stamp, frame_id=self.get_parameter("frame_id").value)
        if render:
            self._queue_frame((copy.copy(self._env.data), stamp))
        joint_state = JointState(header=header, name=list(JOINT_NAMES))
        joint_state.position = observation.qpos.astype(np.float64).tolist()
        joint_state.velocity = observation.qvel.astype(np.float64).tolist()
        self._joint_publisher.publish(joint_state)
        self._last_clock = self._clock_offset + observation.time
        self._clock_publisher.publish(Clock(clock=conversions.seconds_to_time(self._last_clock)))
        self._status_publisher.publish(
            TaskStatus(
                header=header,
                task=self._env.config.task,
                instruction=self._env.instruction,
                episode=self._episode,
                step=self._env.step_count,
                max_steps=self._env.max_steps,
                progress=self._progress,
                success=self._success,
                done=self._done,
            )
        )

    # ------------------------------------------------------------------ cameras
    def _queue_frame(self, frame: tuple | None) -> None:
        """Queue (state copy, stamp) for the camera thread, replacing a frame it has not
        started yet; None stops the thread."""
        while True:
            try:
                self._frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._frames.get_nowait()
                except queue.Empty:
                    continue
                if frame is not None:
                    self.frames_dropped += 1
                    self.get_logger().warning(
                        f"camera frame dropped ({self.frames_dropped} so far): rendering is "
                        "slower than camera_rate",
                        throttle_duration_sec=5.0,
                    )

    def _render_frames(self) -> None:
        """The camera thread: render each queued state copy and publish it with its stamp.

        It owns the renderer's GL context (created by its first render). A failure stops the
        cameras, and the planner then refuses to plan from stale observations, so the arms
        hold; it is logged at once.
        """
        try:
            while (frame := self._frames.get()) is not None:
                state, stamp = frame
                images = self._env.render(data=state)
                for camera, publisher in self._image_publishers.items():
                    publisher.publish(
                        array_to_image(images[camera], header=Header(stamp=stamp, frame_id=camera))
                    )
        except Exception as error:
            if self.context.ok():
                self.get_logger().fatal(f"camera rendering stopped: {error!r}")

    def destroy_node(self) -> None:
        try:
            self._loop.stop()
        finally:
            self._queue_frame(None)
            self._camera_thread.join(timeout=2.0)
            self._env.close()
            super().destroy_node()


def main(args: list[str] | None = None) -> None:
    from wav_ros.nodes.spin import run_nodes

    run_nodes([SimBridgeNode], args=args, threads=1)


if __name__ == "__main__":
    main()
