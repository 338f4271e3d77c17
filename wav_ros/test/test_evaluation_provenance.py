"""The digests that tie a cached episode to the checkpoint, planner and code that ran it."""

from wav_ros.evaluation.provenance import (
    GRAPH_CODE,
    HARNESS_CODE,
    checkpoint_digest,
    code_digest,
)


def test_code_digests_follow_the_code_each_evaluation_runs(tmp_path):
    package = tmp_path / "wav_ros"
    files = (
        "model/expert.py", "nodes/latent_planner.py", "training/report.py",
        "training/policies.py", "evaluation/graph.py", "evaluation/harness.py",
        "evaluation/provenance.py",
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
