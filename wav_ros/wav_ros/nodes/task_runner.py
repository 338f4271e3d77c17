"""The closed-loop task runner: plan, execute the first steps of the chunk, re-plan.

Stops when the task reports success, when the step budget (control steps executed) is spent,
or on a refusal it cannot recover from. Each plan after a chunk is made from an observation
taken after that chunk ended (PlanOptions.observation_not_before), never from a frame taken
while the arms still moved. When the predicted value drops below `value_threshold` twice in a
row it drops the planner's warm start and re-plans from scratch, and counts it in the report.
While it runs it publishes /wav/heartbeat at 10 Hz: the executor's deadman, so the arms stop
if the runner dies.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field

from rclpy.action import ActionClient
from rclpy.node import Node
from std_msgs.msg import Empty
from trajectory_msgs.msg import JointTrajectory

from wav_interfaces.action import ExecuteTrajectory
from wav_interfaces.msg import Observation, PlanOptions, TaskStatus
from wav_interfaces.srv import Plan
from wav_ros.nodes.conversions import duration_to_seconds, seconds_to_time, time_to_seconds
from wav_ros.nodes.qos import LATCHED
from wav_ros.robot_description import CONTROL_HZ

REFUSED_PREFIX = "the executor refused the plan: "
ABORTED = ExecuteTrajectory.Result.ABORTED


@dataclass
class TaskRunnerConfig:
    """How the runner closes the loop."""

    instruction: str
    """What to ask /wav/plan for; empty uses the task's own instruction from /sim/task_status."""
    steps_per_plan: int | None = None
    """Points executed from each planned chunk before re-planning (None: the plan's own
    execute_steps, the checkpoint's setting; half the chunk from a planner that sends none)."""
    max_steps: int = 400
    """Step budget of the episode: control steps (1/CONTROL_HZ s) the executed chunks last."""
    value_threshold: float = float("-inf")
    """Predicted value below which a plan counts as poor; two in a row reset the planner."""
    timeout: float = 30.0
    """Seconds to wait for one plan or one execution."""
    goal_resend: float = 2.0
    """Seconds to wait for the executor to answer a goal before sending it again: a request
    sent before DDS has matched a new client to the server is dropped, not queued."""
    max_refusals_in_a_row: int = 3
    """Refused plans in a row (by the planner or the executor's safety gate) before the run
    stops; each refusal is re-planned, since the planner samples anew."""
    startup_grace: float = 10.0
    """Seconds, from the planner's first answer, during which a first plan or execution refused
    because the graph is still starting (no or a stale observation, no heartbeat or joint state
    yet) is retried rather than fatal."""
    observation_wait: float = 1.0
    """Seconds to wait, after each executed chunk, for an observation taken after it ended,
    which the next plan must start from. A plan from a frame taken while the arms still moved
    (at 10 Hz, up to 5 control steps earlier) replays motion already done; with such plans the
    graph failed the episode the harness solves (reports/training/notes.md)."""
    options: PlanOptions = field(default_factory=PlanOptions)
    """Options passed with every /wav/plan call (observation_not_before is the runner's)."""

    def __post_init__(self) -> None:
        if self.steps_per_plan is not None and self.steps_per_plan < 1:
            raise ValueError(f"steps_per_plan must be >= 1 or None, got {self.steps_per_plan}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("goal_resend", "observation_wait"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class TaskReport:
    """What one closed-loop episode did."""

    instruction: str
    success: bool = False
    steps: int = 0
    """Control steps executed: a chunk's points, plus the steps the planner added where it
    slowed a segment to the velocity limits (as the harness counts them)."""
    plans: int = 0
    replans_from_scratch: int = 0
    refused_plans: int = 0
    """Plans refused by the planner (e.g. decoded far outside a joint limit) or by the
    executor's safety gate (e.g. too far from the arms' state); each was re-planned."""
    refusals: list[str] = field(default_factory=list)
    """Why each of those plans was refused, in order (the planner's or the gate's message)."""
    plans_started_at_arms: int = 0
    """Plans whose first target lay out of one step's reach, so that they started at the
    measured arms (the planner's `start_anchored` stat)."""
    planning_times: list[float] = field(default_factory=list)
    predicted_values: list[float] = field(default_factory=list)
    best_progress: float = 0.0
    """The highest task progress /sim/task_status reported during the run (1: solved): how
    far a failed episode got, as the harness's best progress says."""
    stop_reason: str = ""

    def summary(self) -> dict[str, object]:
        times = sorted(self.planning_times)
        data = asdict(self)
        data["planning_time_p50"] = times[len(times) // 2] if times else None
        data["planning_time_max"] = times[-1] if times else None
        return data


def truncate(trajectory: JointTrajectory, steps: int) -> JointTrajectory:
    """The first `steps` points of a trajectory (same header and joints)."""
    return JointTrajectory(
        header=trajectory.header,
        joint_names=trajectory.joint_names,
        points=list(trajectory.points[:steps]),
    )


def steps_per_plan(config: TaskRunnerConfig, plan: Plan.Response) -> int:
    """Points of `plan` to execute: the runner's setting, else the plan's execute_steps, else
    half its chunk (a planner from before execute_steps)."""
    if config.steps_per_plan is not None:
        return config.steps_per_plan
    return plan.execute_steps or max(1, len(plan.trajectory.points) // 2)


def control_steps(trajectory: JointTrajectory) -> int:
    """Control periods a trajectory lasts from its stamp: one per point, more where the
    planner slowed a segment to the velocity limits."""
    return round(duration_to_seconds(trajectory.points[-1].time_from_start) * CONTROL_HZ)


class TaskRunner(Node):
    """A client of /wav/plan, the ExecuteTrajectory action and /sim/task_status.

    `run` blocks; the node must be spun by an executor in another thread meanwhile. It watches
    `observation_topic` (the planner's) only for the stamps.
    """

    def __init__(self, observation_topic: str = "/wav/observation", **kwargs) -> None:
        super().__init__("task_runner", **kwargs)
        self.plan_client = self.create_client(Plan, "/wav/plan")
        self.execute_client = ActionClient(self, ExecuteTrajectory, "/wav/execute_trajectory")
        self.status: TaskStatus | None = None
        self._status_received = threading.Event()
        self._best_progress = 0.0  # since the current run started
        self.create_subscription(TaskStatus, "/sim/task_status", self._on_status, LATCHED)
        self._observed = threading.Condition()
        self._newest_observation = -math.inf  # stamp (s) of the newest observation seen
        self.create_subscription(Observation, observation_topic, self._on_observation, 1)
        self.heartbeat_enabled = False
        heartbeat = self.create_publisher(Empty, "/wav/heartbeat", 10)
        self.create_timer(0.1, lambda: self.heartbeat_enabled and heartbeat.publish(Empty()))

    def _on_status(self, message: TaskStatus) -> None:
        self.status = message
        if math.isfinite(message.progress):
            self._best_progress = max(self._best_progress, float(message.progress))
        self._status_received.set()

    def _on_observation(self, message: Observation) -> None:
        with self._observed:
            stamp = time_to_seconds(message.header.stamp)
            self._newest_observation = max(self._newest_observation, stamp)
            self._observed.notify_all()

    def wait_for_observation(self, not_before: float, timeout: float) -> bool:
        """Block until an observation stamped at or after `not_before` (s, ROS clock) arrived;
        False after `timeout` s without one."""
        with self._observed:
            return self._observed.wait_for(lambda: self._newest_observation >= not_before, timeout)

    def wait_for_graph(self, timeout: float) -> str:
        """ "" when /wav/plan and the executor are up, else what is missing."""
        if not self.plan_client.wait_for_service(timeout_sec=timeout):
            return "/wav/plan is not available"
        if not self.execute_client.wait_for_server(timeout_sec=timeout):
            return "the /wav/execute_trajectory action server is not available"
        return ""

    def run(self, config: TaskRunnerConfig) -> TaskReport:
        self.heartbeat_enabled = True
        self._best_progress = 0.0
        try:
            report = self._run(config)
        finally:
            self.heartbeat_enabled = False
        report.best_progress = self._best_progress
        return report

    def _run(self, config: TaskRunnerConfig) -> TaskReport:
        report = TaskReport(instruction=config.instruction)
        missing = self.wait_for_graph(config.timeout)
        needs_status = not missing and not config.instruction
        if needs_status and not self._status_received.wait(config.timeout):
            missing = "no instruction given and no task status on /sim/task_status to take it from"
        if missing:
            report.stop_reason = missing
            return report
        poor_in_a_row = refused_in_a_row = 0

        def count_refusal(error: str) -> bool:
            """Record a refused plan; True while refusals in a row are within the budget."""
            nonlocal refused_in_a_row
            report.refused_plans += 1
            report.refusals.append(error)
            refused_in_a_row += 1
            return refused_in_a_row <= config.max_refusals_in_a_row

        reset_next = True
        started: float | None = None  # when the planner first answered: the grace starts then
        moved_until = 0.0  # ROS time (s) the last executed chunk ended; 0: nothing moved yet
        while True:
            status = self.status
            if status is not None:
                if status.success:
                    report.success, report.stop_reason = True, "task succeeded"
                    return report
                if status.done:
                    report.stop_reason = "the episode ended without success"
                    return report
            if report.steps >= config.max_steps:
                report.stop_reason = f"step budget of {config.max_steps} spent"
                return report
            instruction = config.instruction or (status.instruction if status else "")
            report.instruction = instruction
            if moved_until:
                # A refusal follows if none comes: the planner checks the same bound.
                self.wait_for_observation(moved_until, config.observation_wait)
            plan = self._plan(instruction, config, reset_next, moved_until)
            # A planner process still loading its model already offers /wav/plan but answers
            # only once it spins, so the grace is counted from its first answer.
            started = time.monotonic() if started is None else started
            reset_next = False
            if (
                not plan.success
                and report.plans == 0
                and self._warming_up(plan.message, started, config)
            ):
                time.sleep(0.1)  # observations are not flowing yet: poll the graph at 10 Hz
                continue
            if not plan.success:
                error = f"plan refused: {plan.message}"
                if count_refusal(error) and report.plans:
                    self.get_logger().warning(f"{error}; re-planning")
                    continue
                report.stop_reason = error
                return report
            report.plans += 1
            stats = dict(zip(plan.stat_names, plan.stat_values, strict=False))
            report.plans_started_at_arms += int(stats.get("start_anchored", 0))
            report.planning_times.append(plan.planning_time)
            report.predicted_values.append(plan.predicted_value)
            poor_in_a_row = (
                poor_in_a_row + 1 if plan.predicted_value < config.value_threshold else 0
            )
            if poor_in_a_row >= 2:
                report.replans_from_scratch += 1
                poor_in_a_row = 0
                reset_next = True
                self.get_logger().warning(
                    f"predicted value {plan.predicted_value:.3f} below "
                    f"{config.value_threshold} twice in a row: re-planning from scratch"
                )
                continue
            chunk = truncate(
                plan.trajectory, min(steps_per_plan(config, plan), config.max_steps - report.steps)
            )
            error = self._execute(chunk, config)
            if error and report.steps == 0 and self._warming_up(error, started, config):
                continue  # the executor has not seen our heartbeat or a joint state yet
            if error.startswith(REFUSED_PREFIX) and count_refusal(error):
                self.get_logger().warning(f"{error}; re-planning")
                continue
            if error:
                report.stop_reason = error
                return report
            refused_in_a_row = 0
            report.steps += control_steps(chunk)
            moved_until = self.get_clock().now().nanoseconds * 1e-9

    @staticmethod
    def _warming_up(error: str, started: float, config: TaskRunnerConfig) -> bool:
        """A refusal that only means the graph is still starting (no or only a stale observation
        reached the planner, or no heartbeat or joint state the executor yet), within
        `startup_grace` s."""
        markers = ("[deadman]", "[state]", "no observation received", "stale observation")
        transient = any(marker in error for marker in markers)
        return transient and time.monotonic() - started < config.startup_grace

    def _plan(
        self, instruction: str, config: TaskRunnerConfig, reset: bool, not_before: float
    ) -> Plan.Response:
        options = PlanOptions()
        for slot in PlanOptions.get_fields_and_field_types():
            setattr(options, slot, getattr(config.options, slot))
        options.reset_warm_start = reset or config.options.reset_warm_start
        options.observation_not_before = seconds_to_time(not_before)
        request = Plan.Request(instruction=instruction, options=options)
        try:
            response = self.plan_client.call(request, timeout_sec=config.timeout)
        except TimeoutError:  # rclpy here (Kilted) raises; older versions return None
            response = None
        if response is None:
            return Plan.Response(
                success=False, message=f"/wav/plan did not answer in {config.timeout} s"
            )
        return response

    def _execute(self, trajectory: JointTrajectory, config: TaskRunnerConfig) -> str:
        """Run one goal to its end; "" on success, else why it failed."""
        goal = ExecuteTrajectory.Goal(trajectory=trajectory, blend=True)
        copies = self._send_goal(goal, config)
        first = next((future for future in copies if future.done()), None)
        if first is None:
            return "the executor did not answer the goal in time"
        if not first.result().accepted:
            return "the executor rejected the goal"
        wrapped = _wait(first.result().get_result_async(), config.timeout)
        late = [f.result() for f in copies if f is not first and f.done() and f.result().accepted]
        if wrapped is not None and wrapped.result.error_code == ABORTED and late:
            # A late copy (same trajectory and stamp) superseded the first: follow it instead.
            wrapped = _wait(late[-1].get_result_async(), config.timeout)
        if wrapped is None:
            return "the execution did not finish in time"
        result = wrapped.result
        if result.error_code == ExecuteTrajectory.Result.REFUSED:
            return f"{REFUSED_PREFIX}{result.message}"
        if result.error_code != ExecuteTrajectory.Result.SUCCEEDED:
            return f"execution failed (code {result.error_code}): {result.message}"
        return ""

    def _send_goal(self, goal: ExecuteTrajectory.Goal, config: TaskRunnerConfig) -> list:
        """The futures of the copies of `goal` sent: again every `goal_resend` s while none is
        answered, for up to `timeout` s. A copy answered late carries the same trajectory and
        stamp, so if it supersedes the first the arms follow the same path."""
        copies = []
        answered = threading.Event()
        deadline = time.monotonic() + config.timeout
        while not answered.is_set() and time.monotonic() < deadline:
            future = self.execute_client.send_goal_async(goal)
            future.add_done_callback(lambda _: answered.set())
            copies.append(future)
            answered.wait(min(config.goal_resend, max(0.0, deadline - time.monotonic())))
        return copies


def _wait(future, timeout: float):
    """Wait for a future completed by an executor spinning in another thread; None on timeout."""
    finished = threading.Event()
    future.add_done_callback(lambda _: finished.set())
    if not finished.wait(timeout):
        return None
    return future.result()
