"""The digests that tie a cached episode to the checkpoint, planner and code that ran it."""

import ast

import numpy as np
import pytest

from wav_ros import PACKAGE_DIR
from wav_ros.evaluation.provenance import (
    GRAPH_CODE,
    HARNESS_CODE,
    CodeScope,
    checkpoint_digest,
    code_digest,
)


def test_code_digests_follow_the_code_each_evaluation_runs(tmp_path):
    package = tmp_path / "wav_ros"
    files = (
        "model/expert.py", "nodes/latent_planner.py", "training/report.py",
        "training/policies.py", "evaluation/graph.py", "evaluation/harness.py",
        "evaluation/provenance.py", "data/record.py",
    )  # fmt: skip
    for name in files:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("x = 1\n")

    def digests() -> tuple[str, str]:
        return code_digest(HARNESS_CODE, package), code_digest(GRAPH_CODE, package)

    def edit(name: str) -> tuple[bool, bool]:
        """Which of the two digests an edit of `name` changes."""
        before = digests()
        (package / name).write_text((package / name).read_text() + "x += 1\n")
        return tuple(old != new for old, new in zip(before, digests(), strict=True))

    assert edit("training/report.py") == (False, False)  # the report runs no episode
    assert edit("model/expert.py") == (True, True)
    assert edit("nodes/latent_planner.py") == (False, True)
    assert edit("training/policies.py") == (True, False)  # the harness's policy adapter
    assert edit("evaluation/harness.py") == (True, False)
    assert edit("evaluation/graph.py") == (False, True)
    # The digest machinery runs no episode: moving or mending it keeps every cached one.
    assert edit("evaluation/provenance.py") == (False, False)
    assert edit("data/record.py") == (False, False)  # recording runs in no evaluation


def scoped_sources(scope: CodeScope) -> list[str]:
    """The package's sources that `scope` hashes, relative to the package."""
    relative = (p.relative_to(PACKAGE_DIR).as_posix() for p in PACKAGE_DIR.rglob("*.py"))
    return sorted(r for r in relative if r.split("/")[0] not in scope.skipped or r in scope.runners)


def imported_sources(source: str) -> set[str]:
    """The package's files a source imports, at its top or inside a function (relative to the
    package: a module's file, or a subpackage's __init__.py)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)  # an imported name may be a submodule or an attribute
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    files = set()
    for name in (n for n in names if n.startswith("wav_ros.")):
        path = PACKAGE_DIR.joinpath(*name.split(".")[1:])
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                files.add(candidate.relative_to(PACKAGE_DIR).as_posix())
    return files


@pytest.mark.parametrize("scope", [HARNESS_CODE, GRAPH_CODE], ids=["harness", "graph"])
def test_skipped_recorder_and_training_code_is_not_what_episodes_call(scope):
    """The scopes leave data/ and training/ out because the code they hash never imports
    them (but for the runners listed): a change there cannot change an episode."""
    for relative in scoped_sources(scope):
        for imported in imported_sources((PACKAGE_DIR / relative).read_text()):
            if imported.split("/")[0] in ("data", "training"):
                assert imported in scope.runners, f"{relative} imports {imported}: not hashed"


def test_checkpoint_digest_tells_weights_and_settings_apart(tmp_path):
    def checkpoint(name: str, config: str, weights: bytes) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(config)
        (tmp_path / name / "model.safetensors").write_bytes(weights)
        return checkpoint_digest(tmp_path / name)

    shipped = checkpoint("shipped", '{"stall_tolerance": 0.05}', b"weights")
    assert checkpoint("copy", '{"stall_tolerance": 0.05}', b"weights") == shipped
    assert checkpoint("retrained", '{"stall_tolerance": 0.05}', b"weightz") != shipped
    # An inference setting edited in config.json is another policy too.
    assert checkpoint("edited", '{"stall_tolerance": null}', b"weights") != shipped


def test_plan_digest_reads_the_same_plans_twice_and_a_saved_difference(tmp_path, capsys):
    from wav_ros.evaluation import plan_digest

    saved = tmp_path / "plans.npy"
    plan_digest.main(["--task", "transfer_cube", "--seeds", "3", "--save", str(saved)])
    first = capsys.readouterr().out
    np.save(saved, np.load(saved) + 1e-3)  # as if another machine had planned them
    plan_digest.main(["--task", "transfer_cube", "--seeds", "3", "--compare", str(saved)])
    second = capsys.readouterr().out
    assert first.splitlines()[0] == second.splitlines()[0]  # same sha256 in one process
    assert "largest difference from" in second and "0.001" in second
    with pytest.raises(SystemExit, match="holds chunks of shape"):
        plan_digest.main(["--task", "transfer_cube", "--seeds", "3", "4", "--compare", str(saved)])
