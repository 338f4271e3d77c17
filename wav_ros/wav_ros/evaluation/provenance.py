"""Which checkpoint, planner settings and code produced a cached episode (no rclpy).

The report and the node-graph evaluation reuse episodes cached on disk only when these
digests match, so a retrained model, another planner setting or changed code is evaluated
afresh. This module lies outside both code scopes it defines: editing the digest machinery
reruns nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from wav_ros import PACKAGE_DIR
from wav_ros.planning import PlannerConfig


class CodeScope(NamedTuple):
    """Which of the package's Python sources an evaluation runs: all but the subpackages in
    `skipped`, except the files of theirs in `runners` (paths relative to the package)."""

    skipped: tuple[str, ...]
    runners: tuple[str, ...]


#: The sources the harness's episodes run: not the recorder, the training tools, the offline
#: evaluation tools or the ROS nodes, but the harness itself and the policy adapters.
HARNESS_CODE = CodeScope(
    skipped=("data", "training", "evaluation", "nodes"),
    runners=(
        "training/policies.py",
        "evaluation/harness.py",
        "evaluation/policies.py",
        "evaluation/libero.py",
    ),
)
#: The sources the node graph's episodes run: every module but the offline tools (recorder,
#: training, evaluation), and the module that starts the graph per episode and reads its report.
GRAPH_CODE = CodeScope(skipped=("data", "training", "evaluation"), runners=("evaluation/graph.py",))


def checkpoint_digest(directory: str | Path) -> str:
    """A short SHA-256 of a save_pretrained folder's config and weights: which model this is."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        digest.update((Path(directory) / name).read_bytes())
    return digest.hexdigest()[:16]


def code_digest(scope: CodeScope, package_dir: Path = PACKAGE_DIR) -> str:
    """A short SHA-256 of the package's sources in `scope`: with checkpoint_digest, which
    code produced a cached episode, so that one run under other code is not counted."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        if relative.parts[0] in scope.skipped and relative.as_posix() not in scope.runners:
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def planner_digest(config: PlannerConfig) -> str:
    """A short SHA-256 of planner settings: with checkpoint_digest, which WAV policy ran."""
    settings = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:8]
