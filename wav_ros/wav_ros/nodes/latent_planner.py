"""latent_planner: serves /wav/plan with WAV's latent trajectory planning.

`mode: local` plans in this process with the loaded model. `mode: distributed` draws the
candidates here but imagines them over /wav/imagine (world_model) and scores them over
/wav/score (value), so the heavy experts can run on another machine; the observation is
encoded and the chosen trajectory decoded here. Either way the answer is a time-stamped
bimanual JointTrajectory, published on /wav/planned_trajectory too, with the candidates'
value curves as a MarkerArray and a latched status.

Refusals, each with its reason in the response: no model, inactive node, empty instruction,
no observation yet, a stale or malformed observation, none taken since the request's
`observation_not_before`, a plan already in progress (calls are never interleaved), and any
failure of the model or of the remote services.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import Point
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from wav_interfaces.msg import ImaginedRollout, Observation, PlannerStatus
from wav_interfaces.srv import Imagine, Plan, Score
from wav_ros.execution import SafetyLimits, start_from_state, time_within_velocity_limits
from wav_ros.nodes import conversions
from wav_ros.nodes.graph import load_joint_limits
from wav_ros.nodes.model_host import ModelNode
from wav_ros.nodes.qos import LATCHED
from wav_ros.nodes.rollout_publisher import RolloutPublisher
from wav_ros.planning import LatentTrajectoryPlanner, PlannerConfig
from wav_ros.robot_description import CONTROL_HZ, JOINT_NAMES

#: PlannerConfig fields exposed as `planner.<name>` parameters.
PLANNER_PARAMETERS: tuple[str, ...] = (
    "iterations",
    "num_video_samples",
    "num_value_samples",
    "value_elite_fraction",
    "video_elite_fraction",
    "sigma_decay",
    "smoothing",
    "method",
    "temperature",
    "final_choice",
    "warm_start",
    "seed",
)


class PlanRefusedError(Exception):
    """A /wav/plan call that cannot be planned; the message is returned to the caller."""


def _line_strip(header: Header, ns: str, marker_id: int, points, rgba, width: float) -> Marker:
    marker = Marker(header=header, ns=ns, id=marker_id, type=Marker.LINE_STRIP)
    marker.action = Marker.ADD
    marker.pose.orientation.w = 1.0
    marker.scale.x = width
    marker.color.r, marker.color.g, marker.color.b, marker.color.a = rgba
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
    return marker


def _chart_xs(steps: int) -> np.ndarray:
    return 0.5 * np.arange(steps) / max(steps - 1, 1)


def plan_markers(
    header: Header, candidate_values: np.ndarray | None, chosen_values: np.ndarray, waypoints
) -> MarkerArray:
    """RViz view of one plan, as charts in the x-z plane (x: through the chunk, 0 to 0.5 m):

    - `wav_candidates`: each video candidate's best value curve (z: value, y: candidate),
      coloured red (low) to green (high) by its mean;
    - `wav_chosen`: the chosen plan's value curve, white;
    - `wav_plan`: the planned trajectory's waypoints (the measured start included when the
      plan starts from it), one curve per joint (z: position), at y = -0.3.
    """
    markers = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
    steps = len(chosen_values)
    xs = _chart_xs(steps)
    if candidate_values is not None:
        curves = candidate_values.max(axis=1)  # (M, L): best value noise of each video
        means = curves.mean(axis=1)
        low, span = float(means.min()), float(np.ptp(means)) or 1.0
        for index, curve in enumerate(curves):
            shade = (float(curve.mean()) - low) / span
            points = zip(xs, np.full(steps, 0.02 * index), 0.2 * curve, strict=True)
            markers.markers.append(
                _line_strip(
                    header, "wav_candidates", index, points, (1 - shade, shade, 0.1, 0.6), 0.004
                )
            )
    points = zip(xs, np.full(steps, -0.05), 0.2 * np.asarray(chosen_values), strict=True)
    markers.markers.append(_line_strip(header, "wav_chosen", 0, points, (1, 1, 1, 1), 0.01))
    waypoints = np.asarray(waypoints)
    xs = _chart_xs(len(waypoints))
    for joint in range(waypoints.shape[1]):
        hue = joint / waypoints.shape[1]
        height = 0.1 * waypoints[:, joint]
        points = zip(xs, np.full(len(xs), -0.3 - 0.01 * joint), height, strict=True)
        markers.markers.append(
            _line_strip(header, "wav_plan", joint, points, (hue, 0.5, 1 - hue, 0.9), 0.005)
        )
    return markers


@dataclass
class FinalTrajectory:
    """The chosen candidate, re-imagined and scored once more for decoding."""

    video_features: Any
    value_features: Any
    values: np.ndarray
    """(L,) predicted value per step."""
    rollout: ImaginedRollout


class LocalExperts:
    """Imagine and score with the model in this process."""

    def __init__(self, policy, context, header: Header, instruction: str) -> None:
        self.policy, self.context = policy, context
        self.header, self.instruction = header, instruction
        self.last_values: np.ndarray | None = None

    def imagine(self, noise):
        return self.policy.imagine(self.context, noise)

    def score(self, features, noise):
        values = self.policy.score(self.context, features, noise, return_features=False).values
        self.last_values = values.cpu().numpy()
        return values

    def finish(self, video_noise, value_noise, want_rollout: bool) -> FinalTrajectory:
        features = self.policy.imagine(self.context, video_noise[None])
        scores = self.policy.score(self.context, features, value_noise[None, None])
        frames = self.policy.decode_frames(self.context, video_noise) if want_rollout else None
        values = scores.values[0, 0].cpu().numpy()
        rollout = conversions.rollout_message(
            self.header,
            self.instruction,
            list(self.policy.config.camera_names),
            frames,
            values,
            float(scores.snr.item()),
        )
        return FinalTrajectory(features, scores.features, values, rollout)


class RemoteExperts:
    """Imagine over /wav/imagine and score over /wav/score; features pass through opaquely."""

    def __init__(self, node: LatentPlannerNode, observation: Observation, instruction: str):
        self.node, self.observation, self.instruction = node, observation, instruction
        self.last_values: np.ndarray | None = None
        self._last_reply: Score.Response | None = None

    def imagine(self, noise, decode_rollout: bool = False) -> Imagine.Response:
        request = Imagine.Request(observation=self.observation, instruction=self.instruction)
        request.video_noise = conversions.array_to_tensor("video_noise", noise.cpu().numpy())
        request.decode_rollout = decode_rollout
        return self.node.call(self.node.imagine_client, request)

    def score(self, imagined: Imagine.Response, noise):
        import torch

        request = Score.Request(features=imagined.features)
        request.value_noise = conversions.array_to_tensor("value_noise", noise.cpu().numpy())
        self._last_reply = self.node.call(self.node.score_client, request)
        self.last_values = conversions.tensor_to_array(self._last_reply.values, name="values")
        return torch.from_numpy(self.last_values)

    def finish(self, video_noise, value_noise, want_rollout: bool) -> FinalTrajectory:
        import torch

        from wav_ros.model import ValueFeatures, VideoFeatures

        candidate_values = self.last_values
        imagined = self.imagine(video_noise[None], decode_rollout=want_rollout)
        values = self.score(imagined, value_noise[None, None])[0, 0].numpy()
        self.last_values = candidate_values

        def unpack(features, cls):
            arrays = conversions.features_to_arrays(features)
            return cls.from_tensor(torch.from_numpy(arrays["hidden_states"]))

        rollout = imagined.rollout
        rollout.values = values.astype(np.float32)
        return FinalTrajectory(
            unpack(imagined.features, VideoFeatures),
            unpack(self._last_reply.value_features, ValueFeatures),
            values,
            rollout,
        )


def project_onto_limits(
    actions: np.ndarray, limits: SafetyLimits, max_projection: float
) -> tuple[np.ndarray, float]:
    """Project decoded actions (T, J) onto the joint limits the executor enforces.

    A learned decoder lands slightly outside a limit now and then; such a plan is projected and
    the largest projection returned (reported in the plan's stats). A plan with an arm joint
    further outside than `max_projection` is refused: the model is then wrong, not imprecise.
    Force-limited joints (grippers) may always be projected: a gripper told to close past
    closed just closes. The executor checks the limits again: nothing outside them moves.
    """
    projected = np.clip(actions, limits.lower, limits.upper)
    excess = np.abs(projected - actions) * limits.position_tracked
    worst = int(np.argmax(excess.max(axis=0)))
    largest = float(excess[:, worst].max())
    if largest > max_projection:
        raise PlanRefusedError(
            f"the model predicted joint {limits.joint_names[worst]!r} {largest:.3f} outside its "
            f"limits [{limits.lower[worst]}, {limits.upper[worst]}]; refusing the plan"
        )
    return projected, largest


class LatentPlannerNode(ModelNode):
    """The /wav/plan service; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("latent_planner", **kwargs)
        declare = self.declare_parameter
        declare("mode", "local")
        declare("observation_topic", "/wav/observation")
        declare("max_observation_age", 0.5)
        planner_defaults = PlannerConfig()
        for name in PLANNER_PARAMETERS:
            declare(f"planner.{name}", getattr(planner_defaults, name))
        declare("visualize", True)
        declare("frame_id", "world")
        declare("imagine_service", "/wav/imagine")
        declare("score_service", "/wav/score")
        declare("service_timeout", 10.0)
        declare("limits_file", "")
        declare("max_limit_projection", 0.1)
        # A chunk's first target this far (rad) from the measured arms means the model is wrong
        # about where they are: refused. Closer, a first target out of one step's reach is
        # reached from the measured state at the velocity limits (`start_from_state`).
        declare("max_start_jump", 0.5)
        # Points of each chunk the caller executes before the next plan, returned with every
        # plan (0: the checkpoint's execute_steps, chosen where nothing holds still to plan).
        declare("execute_steps", 0)
        if error := self._parameters_error({}):
            raise ValueError(f"latent_planner: {error}")
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._plan_lock = threading.Lock()
        self.joint_limits = load_joint_limits(self.get_parameter("limits_file").value)
        self._observation: Observation | None = None
        self._observation_lock = threading.Lock()
        self._status = PlannerStatus(
            state=PlannerStatus.STATE_UNCONFIGURED, message=self.load_error
        )
        self._clients_group = ReentrantCallbackGroup()
        self._status_publisher = self.create_publisher(PlannerStatus, "/wav/status", LATCHED)
        self._trajectory_publisher = self.create_publisher(
            JointTrajectory, "/wav/planned_trajectory", LATCHED
        )
        self._marker_publisher = self.create_publisher(MarkerArray, "/wav/candidates", 1)
        self._rollout_publisher = RolloutPublisher(self)
        self.create_subscription(
            Observation,
            self.get_parameter("observation_topic").value,
            self._on_observation,
            5,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.imagine_client = self.create_client(
            Imagine, self.get_parameter("imagine_service").value, callback_group=self._clients_group
        )
        self.score_client = self.create_client(
            Score, self.get_parameter("score_service").value, callback_group=self._clients_group
        )
        # The plan service exists from the start so that callers get a reason, not silence.
        self.create_service(
            Plan, "/wav/plan", self._on_plan, callback_group=ReentrantCallbackGroup()
        )
        self._publish_status()

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state):
        result = super().on_configure(state)
        if self.policy is not None and (error := self._execute_steps_error()):
            self.policy, self.load_error = None, error
            self.get_logger().error(error)
            result = TransitionCallbackReturn.FAILURE
        self._status.model_loaded = self.policy is not None
        self._status.checkpoint = str(self.checkpoint_path)
        self._set_state(PlannerStatus.STATE_UNCONFIGURED, self.load_error or "configured")
        if self.policy is not None:
            self.policy.planner = LatentTrajectoryPlanner(self._configured_planner)
        return result

    def on_activate(self, state):
        result = super().on_activate(state)
        self._set_state(PlannerStatus.STATE_IDLE, "ready")
        return result

    def on_deactivate(self, state):
        result = super().on_deactivate(state)
        self._set_state(PlannerStatus.STATE_UNCONFIGURED, "deactivated")
        return result

    def on_cleanup(self, state):
        result = super().on_cleanup(state)
        self._status.model_loaded = False
        self._set_state(PlannerStatus.STATE_UNCONFIGURED, self.load_error)
        return result

    def _execute_steps_error(self, value: int | None = None) -> str:
        """Why execute_steps (the parameter's, or a proposed `value`) is outside 0..chunk_size
        of the loaded checkpoint (before one is loaded: negative), or ""."""
        if value is None:
            value = self.get_parameter("execute_steps").value
        chunk = self.policy.config.chunk_size if self.policy is not None else None
        if value >= 0 and (chunk is None or value <= chunk):
            return ""
        upper = chunk if chunk is not None else "chunk_size"
        return f"parameter execute_steps={value} must be in 0..{upper} (0: the checkpoint's)"

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Planner parameters are read at every plan: a `ros2 param set` they could not plan
        with is refused here (the old value stays) instead of refusing every later plan."""
        error = self._parameters_error({p.name: p.value for p in parameters})
        return SetParametersResult(successful=not error, reason=error)

    def _parameters_error(self, changes: dict[str, Any]) -> str:
        """Why the parameters with `changes` (name → proposed value) would not plan, or ""."""
        values = {
            name: changes.get(f"planner.{name}", self.get_parameter(f"planner.{name}").value)
            for name in PLANNER_PARAMETERS
        }
        try:
            PlannerConfig(**values)
        except (TypeError, ValueError) as error:
            return f"invalid planner parameters: {error}"
        max_start_jump = changes.get("max_start_jump", self.get_parameter("max_start_jump").value)
        if not max_start_jump > 0:
            return f"max_start_jump must be > 0 rad, got {max_start_jump}"
        if "execute_steps" in changes:
            return self._execute_steps_error(changes["execute_steps"])
        return ""

    @property
    def execute_steps(self) -> int:
        """Points of each chunk the caller executes before asking for the next plan."""
        return self.get_parameter("execute_steps").value or self.policy.config.execute_steps

    @property
    def _configured_planner(self) -> PlannerConfig:
        values = {name: self.get_parameter(f"planner.{name}").value for name in PLANNER_PARAMETERS}
        return PlannerConfig(**values)

    # ------------------------------------------------------------------ callbacks
    def _on_observation(self, message: Observation) -> None:
        with self._observation_lock:
            self._observation = message

    def _on_plan(self, request: Plan.Request, response: Plan.Response) -> Plan.Response:
        if not self._plan_lock.acquire(blocking=False):
            return self._refuse(
                response, "busy: another /wav/plan call is in progress; calls are not interleaved"
            )
        started = time.perf_counter()
        try:
            self._set_state(PlannerStatus.STATE_PLANNING, f"planning: {request.instruction!r}")
            self._plan(request, response)
        except PlanRefusedError as refusal:
            return self._refuse(response, str(refusal))
        except Exception as error:
            self.get_logger().error(f"planning failed: {error!r}")
            return self._refuse(response, f"planning failed: {type(error).__name__}: {error}")
        finally:
            self._plan_lock.release()
        response.planning_time = time.perf_counter() - started
        self._status.plans_completed += 1
        self._status.last_instruction = request.instruction
        self._status.last_predicted_value = response.predicted_value
        self._status.last_planning_time = response.planning_time
        self._set_state(PlannerStatus.STATE_IDLE, response.message)
        return response

    def _refuse(self, response: Plan.Response, reason: str) -> Plan.Response:
        response.success = False
        response.message = reason
        self._status.plans_refused += 1
        state = (
            PlannerStatus.STATE_IDLE
            if self.policy is not None and self.active
            else (PlannerStatus.STATE_UNCONFIGURED)
        )
        self._set_state(state, reason)
        return response

    # ------------------------------------------------------------------ planning
    def _plan(self, request: Plan.Request, response: Plan.Response) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise PlanRefusedError(reason)
        instruction = request.instruction.strip()
        if not instruction:
            raise PlanRefusedError("empty instruction: say what the arms should do")
        observation = self._fresh_observation(
            conversions.time_to_seconds(request.options.observation_not_before)
        )
        config = self.policy.config
        try:
            images, state = conversions.observation_to_arrays(
                observation, config.camera_names, JOINT_NAMES
            )
        except ValueError as error:
            raise PlanRefusedError(f"observation refused: {error}") from error
        images = self._fit_images(images)
        options = request.options
        planner_config = self._request_planner_config(options)
        if planner_config != self.policy.planner.config:
            self.policy.planner = LatentTrajectoryPlanner(planner_config)
        if options.reset_warm_start:
            self.policy.reset()
        want_rollout = bool(options.return_rollout or self.get_parameter("visualize").value)
        header = Header(
            stamp=self.get_clock().now().to_msg(), frame_id=self.get_parameter("frame_id").value
        )
        context = self.policy.encode_observation(images, state, instruction)
        noise_scale, stalled = self.policy.action_noise_scale_for(state, instruction)
        mode = self.get_parameter("mode").value
        if mode == "local":
            experts = LocalExperts(self.policy, context, header, instruction)
        elif mode == "distributed":
            self._require_services()
            experts = RemoteExperts(self, observation, instruction)
        else:
            raise PlanRefusedError(f"unknown mode {mode!r}: use 'local' or 'distributed'")
        generator = (
            torch.Generator().manual_seed(int(options.seed))
            if options.use_seed
            else self.policy.planner.generator
        )
        outcome = self.policy.planner.plan(
            imagine=experts.imagine,
            score=experts.score,
            video_shape=self.policy.config.video_noise_shape,
            value_shape=self.policy.config.value_noise_shape,
            generator=generator,
            device=self.policy.device,
        )
        final = experts.finish(outcome.video_noise, outcome.value_noise, want_rollout)
        actions = self.policy.decode_actions(
            context, final.video_features, final.value_features, generator, noise_scale
        )
        actions, projected = project_onto_limits(
            actions, self.joint_limits, self.get_parameter("max_limit_projection").value
        )
        dt = 1.0 / CONTROL_HZ
        waypoints, start_jump = start_from_state(actions, state, dt, self.joint_limits)
        max_start_jump = self.get_parameter("max_start_jump").value
        if start_jump > max_start_jump:
            raise PlanRefusedError(
                f"the model's first target lies {start_jump:.3f} from the measured state "
                f"(max_start_jump={max_start_jump}); refusing the plan"
            )
        times = time_within_velocity_limits(waypoints, dt, self.joint_limits)
        start_anchored = len(waypoints) - len(actions)
        stats = dict(
            outcome.stats,
            stalled=stalled,
            action_noise_scale=noise_scale,
            joint_limit_projection=projected,
            start_jump=start_jump,
            start_anchored=start_anchored,
            velocity_limit_slowdown=float(times[-1] - dt * len(times)),
        )
        # The arms hold still while planning: the chunk starts now, when planning finished.
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=header.frame_id)
        self._fill_response(
            request,
            response,
            header,
            observation,
            waypoints,
            times,
            final,
            stats,
            experts.last_values,
        )

    def _fresh_observation(self, not_before: float) -> Observation:
        """The latest observation, refused when older than `max_observation_age` or stamped
        before `not_before` (s; the client's PlanOptions.observation_not_before)."""
        with self._observation_lock:
            observation = self._observation
        topic = self.get_parameter("observation_topic").value
        if observation is None:
            raise PlanRefusedError(f"no observation received on {topic} yet")
        stamp = conversions.time_to_seconds(observation.header.stamp)
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        max_age = self.get_parameter("max_observation_age").value
        if age > max_age:
            raise PlanRefusedError(
                f"stale observation: the latest on {topic} is {age:.3f} s old "
                f"(max_observation_age {max_age} s); is the camera or camera_sync running?"
            )
        if stamp < not_before:
            raise PlanRefusedError(
                f"no observation since observation_not_before yet: the latest on {topic} is "
                f"{not_before - stamp:.3f} s older"
            )
        return observation

    def _fit_images(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from wav_ros.model import resize_images

        size = self.policy.config.tokenizer.image_size
        if all(image.shape[:2] == (size, size) for image in images.values()):
            return images
        return resize_images(images, size)

    def _request_planner_config(self, options) -> PlannerConfig:
        """The configured planner with this request's overrides (they last for this call)."""
        config = self._configured_planner
        changes: dict[str, Any] = {}
        if options.iterations >= 0:
            changes["iterations"] = int(options.iterations)
        if options.num_video_samples > 0:
            changes["num_video_samples"] = int(options.num_video_samples)
        if options.num_value_samples > 0:
            changes["num_value_samples"] = int(options.num_value_samples)
        try:
            return config.replace(**changes) if changes else config
        except ValueError as error:
            raise PlanRefusedError(f"invalid plan options: {error}") from error

    def _require_services(self) -> None:
        timeout = self.get_parameter("service_timeout").value
        for client in (self.imagine_client, self.score_client):
            if not client.wait_for_service(timeout_sec=timeout):
                raise PlanRefusedError(
                    f"service {client.srv_name} is not available (mode distributed)"
                )

    def call(self, client, request):
        """A blocking call to a service of the graph; a refusal or timeout refuses the plan."""
        reply = client.call(request, timeout_sec=self.get_parameter("service_timeout").value)
        if reply is None:
            raise PlanRefusedError(f"{client.srv_name} did not answer in time")
        if not reply.success:
            raise PlanRefusedError(f"{client.srv_name} refused: {reply.message}")
        return reply

    # ------------------------------------------------------------------ results
    def _fill_response(
        self, request, response, header, observation, waypoints, times, final, stats, candidates
    ) -> None:
        response.trajectory = conversions.actions_to_trajectory(
            waypoints, JOINT_NAMES, header=header, dt=1.0 / CONTROL_HZ, times_from_start=times
        )
        # A plan started at the measured arms has one point more to execute.
        response.execute_steps = self.execute_steps + int(stats["start_anchored"])
        response.predicted_value = float(final.values[0])
        response.observation_stamp = observation.header.stamp
        response.best_rollout = final.rollout
        if not request.options.return_rollout:
            response.best_rollout.frames = []
            response.best_rollout.num_future_frames = 0
        names, values = flatten_stats(dict(stats, final_snr=final.rollout.snr))
        response.stat_names, response.stat_values = names, values
        response.success = True
        response.message = (
            f"planned {len(waypoints)} steps for {request.instruction!r}: "
            f"predicted value {response.predicted_value:.3f}"
        )
        self._trajectory_publisher.publish(response.trajectory)
        if not self.get_parameter("visualize").value:
            return
        if final.rollout.frames and self.get_parameter("mode").value == "local":
            self._rollout_publisher.publish(final.rollout)  # distributed: world_model publishes
        self._marker_publisher.publish(plan_markers(header, candidates, final.values, waypoints))

    # ------------------------------------------------------------------ status
    def _set_state(self, state: int, message: str) -> None:
        self._status.state = state
        self._status.message = message
        self._publish_status()

    def _publish_status(self) -> None:
        self._status.header.stamp = self.get_clock().now().to_msg()
        self._status_publisher.publish(self._status)


def flatten_stats(stats: dict[str, Any]) -> tuple[list[str], list[float]]:
    """Planner statistics → parallel name/value lists (lists become name_iter_<k>)."""
    names: list[str] = []
    values: list[float] = []
    for key, value in stats.items():
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                names.append(f"{key}_iter_{index}")
                values.append(float(item))
        elif isinstance(value, int | float):
            names.append(key)
            values.append(float(value))
    return names, values


def main(args: list[str] | None = None) -> None:
    from wav_ros.nodes.spin import run_nodes

    run_nodes([LatentPlannerNode], args=args, threads=executor_threads)


def executor_threads(nodes: list[LatentPlannerNode]) -> int:
    """Local mode plans on the executor's only thread: a MultiThreadedExecutor slowed planning
    by 27-52 % here (benchmarks/bench_planning_graph.py). Calls arriving meanwhile wait in
    their queue and are served in order, never interleaved, after the observations received
    meanwhile. Distributed mode needs threads to hear the services' answers while it plans."""
    return 1 if nodes[0].get_parameter("mode").value == "local" else 3


if __name__ == "__main__":
    main()
