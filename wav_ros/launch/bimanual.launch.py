"""Launch the wav_ros planning graph: `ros2 launch wav_ros bimanual.launch.py [arg:=value ...]`.

The node list and parameters come from wav_ros.nodes.graph.launch_plan, the same function
`bringup` uses, so the two cannot drift. launch and launch_ros are imported only
inside generate_launch_description (they are not installable on every machine we support).
"""

from __future__ import annotations

ARGUMENTS = {
    "sim": ("true", "run the MuJoCo bimanual simulation instead of a real robot"),
    "task": ("", "simulated task, e.g. transfer_cube, bin_sequence ('' = sim_bridge.yaml)"),
    "seed": ("", "seed of the simulated episode ('' = sim_bridge.yaml)"),
    "checkpoint": ("", "WAV checkpoint folder ('' = the tiny one shipped in the package)"),
    "config": ("", "folder of <node>.yaml parameter files ('' = the package's config/)"),
    "rviz": ("false", "start RViz with rviz/wav.rviz"),
    "executor_backend": ("sim", "action_executor backend: sim | joint_trajectory | moveit"),
    "camera_topics": ("", "comma-separated image topics ('' = /<camera>/image_raw)"),
    "namespace": ("", "namespace for every node"),
    "planner_mode": ("local", "local | distributed (world_model and value as their own nodes)"),
}


def plan_from_arguments(values: dict[str, str]):
    """Launch-argument strings → the graph's launch plan (see wav_ros.nodes.graph)."""
    from pathlib import Path

    from wav_ros.nodes.graph import launch_plan

    topics = [topic.strip() for topic in values["camera_topics"].split(",") if topic.strip()]
    return launch_plan(
        sim=values["sim"].lower() in ("true", "1", "yes"),
        planner_mode=values["planner_mode"],
        checkpoint=values["checkpoint"],
        executor_backend=values["executor_backend"],
        camera_topics=topics or None,
        task=values["task"],
        seed=int(values["seed"]) if values["seed"] else None,
        config_dir=Path(values["config"]) if values["config"] else None,
    )


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    def start_graph(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
        return [
            Node(
                package="wav_ros",
                executable=planned.spec.executable,
                name=planned.spec.name,
                namespace=values["namespace"],
                parameters=[str(planned.parameter_file), planned.overrides],
                output="screen",
            )
            for planned in plan_from_arguments(values)
        ]

    rviz_config = [FindPackageShare("wav_ros"), "/rviz/wav.rviz"]
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()
            ),
            OpaqueFunction(function=start_graph),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", rviz_config],
                condition=IfCondition(LaunchConfiguration("rviz")),
                output="screen",
            ),
        ]
    )
