"""The launch file and bringup start the same nodes with the same parameters,
and every parameter file matches what its node declares."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[1]
LAUNCH_FILE = PACKAGE / "launch" / "bimanual.launch.py"


def load_launch_module():
    spec = importlib.util.spec_from_file_location("bimanual_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports launch only inside generate_launch_description
    return module


CASES = [
    [],
    ["--planner-mode", "distributed"],
    ["--no-sim", "--executor-backend", "joint_trajectory", "--checkpoint", "/ckpt"],
    ["--camera-topics", "/a/image", "/b/image", "/c/image"],
    ["--task", "bin_sequence", "--seed", "7"],
]


@pytest.mark.ros
@pytest.mark.parametrize("argv", CASES)
def test_launch_file_and_bringup_plan_the_same_graph(argv):
    from wav_ros.nodes import bringup

    arguments = bringup.build_parser().parse_args(argv)
    launch_values = {name: default for name, (default, _) in load_launch_module().ARGUMENTS.items()}
    launch_values.update(
        sim=str(arguments.sim).lower(),
        planner_mode=arguments.planner_mode,
        checkpoint=arguments.checkpoint,
        executor_backend=arguments.executor_backend,
        camera_topics=",".join(arguments.camera_topics or []),
        task=arguments.task,
        seed="" if arguments.seed is None else str(arguments.seed),
    )
    from_launch = load_launch_module().plan_from_arguments(launch_values)
    from_bringup = bringup.plan_for(arguments)
    assert from_launch == from_bringup
    names = [planned.spec.name for planned in from_bringup]
    assert ("sim_bridge" in names) == arguments.sim
    assert ("world_model" in names) == (arguments.planner_mode == "distributed")
    assert names[-2:] == ["latent_planner", "action_executor"]


def test_every_parameter_file_is_keyed_by_its_node():
    from wav_ros.nodes import graph

    specs = {spec.name for spec in graph.graph_nodes(sim=True, planner_mode="distributed")}
    for name in specs:
        document = yaml.safe_load((PACKAGE / "config" / f"{name}.yaml").read_text())
        assert list(document) == [name], f"config/{name}.yaml must hold only the {name} node"
        assert "ros__parameters" in document[name]


def flatten(parameters: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.ros
def test_every_yaml_parameter_is_declared_and_applied(ros_context):
    """A parameter in a YAML file that its node does not declare would be silently ignored."""
    from wav_ros.nodes import graph

    for planned in graph.launch_plan(sim=True, planner_mode="distributed"):
        document = yaml.safe_load(planned.parameter_file.read_text())
        expected = flatten(document[planned.spec.name]["ros__parameters"])
        node = planned.spec.load_class()(
            cli_args=["--ros-args", "--params-file", str(planned.parameter_file)]
        )
        try:
            for name, value in expected.items():
                assert node.has_parameter(name), f"{planned.spec.name} does not declare {name}"
                actual = node.get_parameter(name).value
                assert list(actual) == value if isinstance(value, list) else actual == value
        finally:
            node.destroy_node()


def test_launch_description_builds_where_launch_is_installed():
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not installable from PyPI; runs on full ROS installs"
    )
    from launch import LaunchDescription

    description = load_launch_module().generate_launch_description()
    assert isinstance(description, LaunchDescription)
