"""bringup: each node in its own process with its parameter file and overrides, and the main
command (`make demo`) running a closed-loop episode through the graph with the REAL shipped
model (no stand-in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.ros
def test_node_command_passes_the_parameter_file_then_the_overrides(tmp_path):
    from wav_ros.nodes import bringup

    arguments = bringup.build_parser().parse_args(
        [
            "--task",
            "bin_sequence",
            "--seed",
            "7",
            "--planner-mode",
            "distributed",
            "--checkpoint",
            "/ckpt",
        ]
    )
    commands = {
        planned.spec.name: (planned, bringup.node_command(planned, tmp_path))
        for planned in bringup.plan_for(arguments)
    }
    planned, command = commands["sim_bridge"]
    assert command[:3] == [sys.executable, "-m", "wav_ros.nodes.sim_bridge"]
    files = [command[i + 1] for i, word in enumerate(command) if word == "--params-file"]
    assert files[0] == str(planned.parameter_file)  # the node's YAML first, overrides win
    assert yaml.safe_load(Path(files[1]).read_text()) == {
        "sim_bridge": {"ros__parameters": {"task": "bin_sequence", "seed": 7}}
    }
    _, planner_command = commands["latent_planner"]
    overrides = yaml.safe_load(Path(planner_command[-1]).read_text())
    assert overrides["latent_planner"]["ros__parameters"] == {
        "checkpoint": "/ckpt",
        "mode": "distributed",
    }
    _, sync_command = commands["camera_sync"]
    assert sync_command.count("--params-file") == 1  # no overrides, no second file


@pytest.mark.ros
@pytest.mark.slow
def test_main_command_runs_an_episode_through_the_graph_with_the_shipped_model(tmp_path):
    """What `make demo` runs, shortened to two plans (of the points the shipped configuration
    executes per plan): every node process comes up, plans with the real model are executed
    by the safety-gated executor in the simulation, and the report says so; the nodes are
    stopped afterwards."""
    import yaml

    from wav_ros import SHIPPED_CHECKPOINT
    from wav_ros.nodes.graph import default_config_dir
    from wav_ros.training.policies import load_policy

    planner = yaml.safe_load((default_config_dir() / "latent_planner.yaml").read_text())
    configured = planner["latent_planner"]["ros__parameters"]["execute_steps"]
    steps = 2 * (configured or load_policy(SHIPPED_CHECKPOINT).config.execute_steps)
    report_file = tmp_path / "report.json"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "wav_ros.nodes.bringup", "--run-task"),
            *("--max-steps", str(steps), "--report", str(report_file)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]  # every process stops cleanly
    report = json.loads(report_file.read_text())
    assert report["steps"] == steps or report["success"], report
    assert report["plans"] >= 2 and len(report["planning_times"]) == report["plans"]
    assert report["node_exits"] == {}
    assert report["instruction"]  # taken from the simulated task


@pytest.mark.ros
@pytest.mark.slow
def test_sigterm_stops_every_node_process(tmp_path):
    """A supervisor's SIGTERM ends bringup as Ctrl-C does: no node process is left behind."""
    import os
    import signal
    import time

    log = tmp_path / "bringup.log"
    with log.open("w") as output:
        bringup = subprocess.Popen(
            [sys.executable, "-m", "wav_ros.nodes.bringup"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the nodes' too
        )
    deadline = time.monotonic() + 120
    while "ready: action_executor" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "ready: action_executor" in log.read_text(), log.read_text()[-4000:]
    bringup.send_signal(signal.SIGTERM)
    assert bringup.wait(timeout=60) == 0
    time.sleep(1.0)
    with pytest.raises(ProcessLookupError):  # nothing left in bringup's process group
        os.killpg(bringup.pid, 0)
