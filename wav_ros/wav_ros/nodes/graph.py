"""The node graph of wav_ros in one place, read by both the launch file and bringup.

`launch/bimanual.launch.py` turns these specs into launch_ros Node actions; `bringup` builds
the same nodes in one process. Both pass the same parameter files, so the two cannot drift.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

#: Planner modes: `local` plans in-process; `distributed` goes over /wav/imagine and /wav/score.
PLANNER_MODES: tuple[str, ...] = ("local", "distributed")
#: Execution backends of action_executor.
EXECUTOR_BACKENDS: tuple[str, ...] = ("sim", "joint_trajectory", "moveit")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: its console script, its default name and its class."""

    executable: str
    """Console script (setup.py entry point) that runs the node on its own."""
    name: str
    """Default node name; also the key of its section in the parameter files."""
    node_class: str
    """`module:Class` of the rclpy node; bringup runs the module (`python -m`)."""

    @property
    def module(self) -> str:
        return self.node_class.split(":")[0]

    def load_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.node_class.split(":")[1])


SIM_BRIDGE = NodeSpec("sim_bridge", "sim_bridge", "wav_ros.nodes.sim_bridge:SimBridgeNode")
CAMERA_SYNC = NodeSpec("camera_sync", "camera_sync", "wav_ros.nodes.camera_sync:CameraSyncNode")
WORLD_MODEL = NodeSpec("world_model", "world_model", "wav_ros.nodes.world_model:WorldModelNode")
VALUE = NodeSpec("value", "value", "wav_ros.nodes.value:ValueNode")
LATENT_PLANNER = NodeSpec(
    "latent_planner", "latent_planner", "wav_ros.nodes.latent_planner:LatentPlannerNode"
)
ACTION_EXECUTOR = NodeSpec(
    "action_executor", "action_executor", "wav_ros.nodes.action_executor:ActionExecutorNode"
)


def graph_nodes(*, sim: bool, planner_mode: str) -> list[NodeSpec]:
    """The nodes to run, in start order: the robot (or its simulation) first, the planner last."""
    if planner_mode not in PLANNER_MODES:
        raise ValueError(f"planner_mode must be one of {PLANNER_MODES}, got {planner_mode!r}")
    nodes = [SIM_BRIDGE] if sim else []
    nodes.append(CAMERA_SYNC)
    if planner_mode == "distributed":
        nodes += [WORLD_MODEL, VALUE]
    nodes += [LATENT_PLANNER, ACTION_EXECUTOR]
    return nodes


def default_config_dir() -> Path:
    """The package's config/ folder: installed share/ when available, else the source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return Path(__file__).resolve().parents[2] / "config"
    try:
        return Path(get_package_share_directory("wav_ros")) / "config"
    except PackageNotFoundError:
        return Path(__file__).resolve().parents[2] / "config"


def load_joint_limits(path: str = ""):
    """The joint limits the planner and the executor enforce ("" = config/joint_limits.yaml)."""
    from wav_ros.execution import SafetyLimits
    from wav_ros.robot_description import JOINT_NAMES

    path = path or str(default_config_dir() / "joint_limits.yaml")
    limits = SafetyLimits.from_yaml(path)
    if tuple(limits.joint_names) != JOINT_NAMES:
        raise ValueError(f"{path} must list the joints {JOINT_NAMES} in order")
    return limits


def parameter_file(spec: NodeSpec, config_dir: Path | None = None) -> Path:
    """Each node's parameters live in config/<node name>.yaml."""
    return (config_dir or default_config_dir()) / f"{spec.name}.yaml"


def parameter_overrides(
    spec: NodeSpec,
    *,
    planner_mode: str,
    checkpoint: str = "",
    executor_backend: str = "",
    camera_topics: list[str] | None = None,
    task: str = "",
    seed: int | None = None,
) -> dict[str, object]:
    """Launch arguments that become node parameters, on top of the node's YAML file.

    Empty arguments (and a None seed) leave the YAML value alone.
    """
    overrides: dict[str, object] = {}
    if checkpoint and spec in (WORLD_MODEL, VALUE, LATENT_PLANNER):
        overrides["checkpoint"] = checkpoint
    if spec is LATENT_PLANNER:
        overrides["mode"] = planner_mode
    if executor_backend and spec is ACTION_EXECUTOR:
        if executor_backend not in EXECUTOR_BACKENDS:
            raise ValueError(
                f"executor backend must be one of {EXECUTOR_BACKENDS}, got {executor_backend!r}"
            )
        overrides["backend"] = executor_backend
    if camera_topics and spec is CAMERA_SYNC:
        overrides["camera_topics"] = list(camera_topics)
    if task and spec is SIM_BRIDGE:
        overrides["task"] = task
    if seed is not None and spec is SIM_BRIDGE:
        overrides["seed"] = seed
    return overrides


@dataclass(frozen=True)
class PlannedNode:
    """A node as both launchers start it: its spec, its parameter file and its overrides."""

    spec: NodeSpec
    parameter_file: Path
    overrides: dict[str, object]


def launch_plan(
    *,
    sim: bool,
    planner_mode: str,
    checkpoint: str = "",
    executor_backend: str = "",
    camera_topics: list[str] | None = None,
    task: str = "",
    seed: int | None = None,
    config_dir: Path | None = None,
) -> list[PlannedNode]:
    """What to start: used by launch/bimanual.launch.py and by bringup."""
    return [
        PlannedNode(
            spec,
            parameter_file(spec, config_dir),
            parameter_overrides(
                spec,
                planner_mode=planner_mode,
                checkpoint=checkpoint,
                executor_backend=executor_backend,
                camera_topics=camera_topics,
                task=task,
                seed=seed,
            ),
        )
        for spec in graph_nodes(sim=sim, planner_mode=planner_mode)
    ]
