"""The training loop of every WAV stage and of the direct baseline, on `accelerate`.

Run layout under `TrainConfig.out`:

    stages/<stage>/checkpoint-<step>/state/        accelerate state: weights, optimizer,
                                                   scheduler, RNG (what resuming restores)
    stages/<stage>/checkpoint-<step>/pretrained/   the same weights in save_pretrained format
                                                   (the EMA weights where ema_decay > 0)
    stages/<stage>/checkpoint-<step>/ema.pt        the EMA's shadow weights (ema_decay > 0)
    stages/<stage>/checkpoint-<step>/trainer_state.json
    stages/<stage>/final/                          save_pretrained of the finished stage
                                                   (its EMA weights where ema_decay > 0)
    stages/<stage>/eval/step-<step>/               closed-loop evaluations during training
    latents/<dataset>-<digest>.pt                  cached VAE latents, one file per dataset
                                                   and tokenizer (TrainConfig.latent_cache
                                                   moves the folder)
    metrics.jsonl                                  {"stage", "step", "loss", "lr", ...} rows
    train_summary.json                             wall time, device, loss start/end per stage

A stage's batch and flow-matching noise at step s are functions of (seed, s, rank), and the
optimizer, scheduler and RNG states are restored, so a resumed stage continues the curve the
uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from wav_ros.training.config import TrainConfig
from wav_ros.training.data import DatasetPart, WindowStore, _mix, window_frame_offsets
from wav_ros.training.ema import WeightEMA
from wav_ros.training.policies import load_policy

if TYPE_CHECKING:
    from wav_ros.model import WAVPolicy

TRAINER_STATE = "trainer_state.json"
EMA_STATE = "ema.pt"


class StageLoss(nn.Module):
    """forward() = policy.compute_loss(batch, stage): what accelerate/DDP wraps, so gradient
    synchronisation sees a forward call."""

    def __init__(self, policy: nn.Module, stage: str) -> None:
        super().__init__()
        self.policy = policy
        self.stage = stage

    def forward(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return self.policy.compute_loss(batch, self.stage, generator)


def warmup_cosine(warmup: int, total: int, floor: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to `floor` at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The checkpoint-<step> folder with the highest step that finished writing, or None."""
    done = [p for p in stage_dir.glob("checkpoint-*") if (p / TRAINER_STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


class Trainer:
    """Runs `config.stages` in order; each stage resumes from its newest checkpoint."""

    def __init__(self, config: TrainConfig) -> None:
        from accelerate import Accelerator

        self.config = config
        if config.torch_threads is not None:
            torch.set_num_threads(config.torch_threads)
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision)
        self.config.out.mkdir(parents=True, exist_ok=True)
        self.store: WindowStore | None = None
        self.summary_path = config.out / "train_summary.json"
        self.metrics_path = config.out / "metrics.jsonl"

    # ------------------------------------------------------------------ setup
    def _log(self, message: str) -> None:
        if self.accelerator.is_main_process:
            print(message, flush=True)

    def _load_store(self, policy: nn.Module, images: bool = False) -> WindowStore:
        """The run's windows, read once; the frames only where `images` asks for them (the
        tokenizer stage, latents to encode): reading and decoding them is most of the time."""
        if self.store is None or (images and not self.store.has_images):
            started = time.perf_counter()
            self.store = WindowStore.from_datasets(
                list(self.config.datasets), policy.config, self.config.data, images=images
            )
            self._log(
                f"{_names(self.config.datasets)}: {len(self.store.episodes)} episodes "
                f"({self.store.num_failed_episodes} failed), {len(self.store)} windows, "
                f"loaded {'with' if images else 'without'} images "
                f"in {time.perf_counter() - started:.0f} s"
            )
        return self.store

    def _initial_policy(self) -> nn.Module:
        """The policy the first stage starts from: --init, the run's last finished stage, or
        fresh weights with the dataset's normalisation."""
        from wav_ros.model import WAVConfig, WAVPolicy

        config = self.config
        if config.policy == "direct":
            from wav_ros.baselines.direct_policy import DirectActionPolicy

            initial = load_policy(config.init)
            if isinstance(initial, DirectActionPolicy):
                return initial  # continue a baseline
            torch.manual_seed(config.seed)
            return DirectActionPolicy.from_wav(initial)
        if config.init is not None:
            initial = load_policy(config.init)
            if not isinstance(initial, WAVPolicy):
                raise ValueError(
                    f"--init {config.init} holds a {type(initial).__name__}, not a WAV "
                    "checkpoint (pass --policy direct to continue a direct baseline)"
                )
            return initial
        stages = ("tokenizer", "video", "value", "action")
        earlier = stages[: stages.index(config.stages[0])]
        for stage in reversed(earlier):
            final = config.out / "stages" / stage / "final"
            if (final / "config.json").is_file():
                self._log(f"starting from this run's finished {stage} stage: {final}")
                return load_policy(final)
        if config.model in ("tiny", "base"):
            model_config = getattr(WAVConfig, config.model)()
        else:
            model_config = WAVConfig.from_dict(json.loads(Path(config.model).read_text()))
        torch.manual_seed(config.seed)
        policy = WAVPolicy(model_config)
        policy.set_normalization(self._load_store(policy).normalization_stats())
        return policy

    def _ensure_latents(self, policy: nn.Module) -> WindowStore:
        """The store with the policy's VAE latents of the kept frames. They are cached per
        dataset and tokenizer in the latent cache folder, so a resumed or later run, or one on
        more datasets, encodes only the datasets not cached yet and reads no images for the
        others."""
        key = _tokenizer_key(policy)
        if self.store is not None and self.store.latent_key == key:
            return self.store
        folder = self.config.latent_cache or self.config.out / "latents"
        store = self._load_store(policy)
        files = {part: folder / _latent_file_name(store, part, key) for part in store.parts}
        missing = []
        for part, file in files.items():
            saved = torch.load(file, weights_only=True) if file.is_file() else None
            if saved is not None and store.latents_fit(saved["latents"], part):
                store.attach_latents(saved["latents"], part)
            else:
                missing.append(part)
        if len(missing) < len(files):
            self._log(f"latents of {len(files) - len(missing)} dataset(s) loaded from {folder}")
        if missing:
            self._encode_latents(policy, store, missing, files)
        store.latent_key = key
        return store

    def _encode_latents(
        self,
        policy: nn.Module,
        store: WindowStore,
        parts: list[DatasetPart],
        files: dict[DatasetPart, Path],
    ) -> None:
        """Encode `parts` of the store (from its frames where it holds them, else read from
        their dataset) and save each in its cache file."""
        from tqdm.auto import tqdm

        from wav_ros.model.tokenizer import VisualTokenizer

        tokenizer = policy.tokenizer.to(self.accelerator.device).eval()

        def encode(images: Tensor) -> Tensor:
            return tokenizer.encode(VisualTokenizer.to_pixels(images.to(self.accelerator.device)))

        started = time.perf_counter()
        with tqdm(
            total=sum(part.count for part in parts),
            desc="cache latents",
            unit="episode",
            disable=not (self.config.progress and self.accelerator.is_main_process),
        ) as bar:
            for part in parts:
                if all(e.images is not None for e in store.episodes[part.episodes]):
                    latents = store.cache_latents(encode, part, progress=bar)
                else:
                    data = replace(self.config.data, max_episodes=part.count)
                    alone = WindowStore.from_dataset(part.root, policy.config, data, images=True)
                    latents = alone.cache_latents(encode, progress=bar)
                    store.attach_latents(latents, part)
                if self.accelerator.is_main_process:
                    files[part].parent.mkdir(parents=True, exist_ok=True)
                    torch.save({"latents": latents}, files[part])
        names = ", ".join(str(part.root) for part in parts)
        self._log(f"latents of {names} cached in {time.perf_counter() - started:.0f} s")

    # ------------------------------------------------------------------ run
    def run(self) -> nn.Module:
        policy = self._initial_policy()
        if self.config.policy == "wav":
            self._apply_model_overrides(policy)
        for stage in self.config.stages:
            policy = self.train_stage(policy, stage)
        return policy

    def _apply_model_overrides(self, policy: WAVPolicy) -> None:
        """Write the run's value_conditioning, video_loss_weight and feature_noise_level into
        the model config, and give it a fresh action expert of the run's action_size."""
        config = self.config
        action = policy.config.action
        if config.action_size not in (None, (action.hidden_size, action.num_heads)):
            width, heads = config.action_size
            torch.manual_seed(config.seed)
            policy.reset_action_expert(width, heads)
            self._log(f"action expert replaced by a fresh one of width {width}, {heads} heads")
        if config.value_conditioning is not None:
            policy.config.action.value_conditioning = config.value_conditioning
        if config.video_loss_weight is not None:
            policy.config.action.video_loss_weight = config.video_loss_weight
        level = config.feature_noise_level
        if level is not None and level != policy.config.feature_noise_level:
            if "value" not in config.stages:
                raise ValueError(
                    f"feature_noise_level {level} differs from the model's "
                    f"{policy.config.feature_noise_level}, but this run has no value stage: "
                    f"its value expert would read features it was not trained on"
                )
            policy.config.feature_noise_level = level

    def train_stage(self, policy: nn.Module, stage: str) -> nn.Module:
        config, accelerator = self.config, self.accelerator
        stage_dir = config.out / "stages" / stage
        final = stage_dir / "final"
        if config.resume and (final / "config.json").is_file():
            self._log(f"stage {stage}: finished earlier, loading {final}")
            return load_policy(final)
        checkpoint = latest_checkpoint(stage_dir) if config.resume else None
        if checkpoint is not None:
            policy = load_policy(checkpoint / "pretrained")
        store = self._load_store(policy, images=stage == "tokenizer")
        if stage == "value" and store.num_failed_episodes == 0:
            raise ValueError(
                f"value training needs failed or perturbed rollouts, but every episode of "
                f"{_names(config.datasets)} succeeded (record some with --noise/--perturbation)"
            )
        if stage != "tokenizer":
            store = self._ensure_latents(policy)
            if stage in ("video", "action") and checkpoint is None and _is_default_latent(policy):
                policy.set_normalization({"latent": store.latent_stats()})
                self._log(f"latent normalisation set from the data: {store.latent_stats()}")
        if stage == "action":
            store = store.imitation_windows()
            if store is not self.store:
                self._log(f"stage action: imitating {len(store)} windows of successful episodes")
        steps = config.steps[stage]
        policy.requires_grad_(False)
        trainable = policy.stage_parameters(stage)
        for parameter in trainable:
            parameter.requires_grad_(True)
        module = StageLoss(policy, stage)
        optimizer = torch.optim.AdamW(
            trainable, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(config.warmup_steps, steps)
        )
        accelerator.free_memory()  # save_state/load_state cover only this stage's objects
        module, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
        ema = None
        if config.ema_decay:
            named = {name: p for name, p in policy.named_parameters() if p.requires_grad}
            ema = WeightEMA(named, config.ema_decay)
        start, elapsed = 0, 0.0
        if checkpoint is not None:
            accelerator.load_state(str(checkpoint / "state"))
            state = json.loads((checkpoint / TRAINER_STATE).read_text())
            start, elapsed = int(state["step"]), float(state["elapsed_s"])
            if ema is not None:
                ema.load_state_dict(_load_ema_state(checkpoint))
            self._log(f"stage {stage}: resumed from {checkpoint} at step {start}")
        self._trim_metrics(stage, start)
        module.train()
        self._run_steps(
            module, optimizer, scheduler, trainable, ema, store, stage, start, steps, elapsed
        )
        if ema is not None:
            ema.copy_to_parameters()
        trained = accelerator.unwrap_model(module).policy.eval()
        if accelerator.is_main_process:
            trained.save_pretrained(final)
        accelerator.wait_for_everyone()
        self._log(f"stage {stage}: done, weights in {final}")
        return trained

    def _run_steps(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        trainable: list[nn.Parameter],
        ema: WeightEMA | None,
        windows: WindowStore,
        stage: str,
        start: int,
        steps: int,
        elapsed: float,
    ) -> None:
        from tqdm.auto import tqdm

        config, accelerator = self.config, self.accelerator
        rank, world = accelerator.process_index, accelerator.num_processes
        on_cpu = accelerator.device.type == "cpu"
        bar = tqdm(
            total=steps,
            initial=start,
            desc=f"{stage}",
            unit="step",
            dynamic_ncols=True,
            disable=not (config.progress and accelerator.is_main_process),
        )
        window_start = time.perf_counter()
        for window_steps, step in enumerate(range(start, steps), start=1):
            began = time.perf_counter()
            batch = windows.batch(
                config.batch_size, config.seed, step, rank, images=stage == "tokenizer"
            )
            # The model draws some noise on the CPU and some on its device: a seeded generator
            # makes the CPU run exactly reproducible; elsewhere the restored global RNG is used.
            generator = (
                torch.Generator().manual_seed(_mix(config.seed + 1, step, rank)) if on_cpu else None
            )
            with accelerator.autocast():
                loss, logs = module(batch, generator)
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            elapsed += time.perf_counter() - began
            done = step + 1
            rate = window_steps * config.batch_size * world / (time.perf_counter() - window_start)
            bar.set_postfix(
                loss=f"{logs['loss']:.4f}",
                lr=f"{scheduler.get_last_lr()[0]:.1e}",
                samples_s=f"{rate:.1f}",
            )
            bar.update(1)
            if done % config.log_every == 0 or done == steps or step == start:
                self._append_metrics(
                    {
                        "stage": stage,
                        "step": done,
                        **logs,
                        "grad_norm": float(grad_norm),
                        "lr": scheduler.get_last_lr()[0],
                        "samples_per_s": rate,
                        "elapsed_s": elapsed,
                    }
                )
            if done % config.save_every == 0 or done == steps:
                self._save_checkpoint(module, ema, stage, done, elapsed)
                self._update_summary(stage, done, steps, elapsed)
            if config.eval_every and stage == "action" and done % config.eval_every == 0:
                self._evaluate(module, ema, stage, done)
        bar.close()

    # ------------------------------------------------------------------ outputs
    def _save_checkpoint(
        self, module: nn.Module, ema: WeightEMA | None, stage: str, step: int, elapsed: float
    ) -> None:
        accelerator = self.accelerator
        stage_dir = self.config.out / "stages" / stage
        folder = stage_dir / f"checkpoint-{step:06d}"
        accelerator.save_state(str(folder / "state"))
        if accelerator.is_main_process:
            with _averaged(ema):
                accelerator.unwrap_model(module).policy.save_pretrained(folder / "pretrained")
            if ema is not None:
                torch.save(ema.state_dict(), folder / EMA_STATE)
            # Written last: a checkpoint without it is incomplete and never resumed from.
            (folder / TRAINER_STATE).write_text(
                json.dumps(
                    {
                        "stage": stage,
                        "step": step,
                        "elapsed_s": elapsed,
                        "seed": self.config.seed,
                        "device": str(accelerator.device),
                        "processes": accelerator.num_processes,
                    },
                    indent=1,
                )
            )
            done = sorted(
                (p for p in stage_dir.glob("checkpoint-*") if (p / TRAINER_STATE).is_file()),
                key=lambda p: int(p.name.split("-")[1]),
            )
            for old in done[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    def _evaluate(self, module: nn.Module, ema: WeightEMA | None, stage: str, step: int) -> None:
        """Closed-loop success of the weights a checkpoint would hold now (main process; the
        others wait)."""
        accelerator = self.accelerator
        if accelerator.is_main_process:
            import functools

            from wav_ros.evaluation import evaluate
            from wav_ros.training.policies import make_eval_policy

            folder = self.config.out / "stages" / stage / "eval" / f"step-{step:06d}"
            with _averaged(ema):
                accelerator.unwrap_model(module).policy.save_pretrained(folder / "weights")
            results = evaluate(
                functools.partial(make_eval_policy, str(folder / "weights")),
                tasks=self.config.eval_tasks,
                episodes=self.config.eval_episodes,
                seed=100_000,
                out_dir=folder,
                save_videos=False,
            )
            self._append_metrics(
                {
                    "stage": stage,
                    "step": step,
                    **{f"success/{t}": s.success_rate for t, s in results.summaries.items()},
                }
            )
            self._log(
                f"eval at {stage} step {step}: "
                + ", ".join(
                    f"{t} {100 * s.success_rate:.0f} %" for t, s in results.summaries.items()
                )
            )
            module.train()
        accelerator.wait_for_everyone()

    def _append_metrics(self, row: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            with self.metrics_path.open("a") as stream:
                stream.write(json.dumps(row) + "\n")

    def _trim_metrics(self, stage: str, start: int) -> None:
        """Drop rows a resumed stage will write again (those past its checkpoint)."""
        if not self.accelerator.is_main_process or not self.metrics_path.is_file():
            return
        rows = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]
        kept = [r for r in rows if r["stage"] != stage or r["step"] <= start]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def _update_summary(self, stage: str, step: int, steps: int, elapsed: float) -> None:
        if not self.accelerator.is_main_process:
            return
        summary = json.loads(self.summary_path.read_text()) if self.summary_path.is_file() else {}
        rows = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]
        losses = [r["loss"] for r in rows if r["stage"] == stage and "loss" in r]
        head = losses[: max(1, len(losses) // 10)]
        tail = losses[-max(1, len(losses) // 10) :]
        summary[stage] = {
            "policy": self.config.policy,
            "steps_done": step,
            "steps": steps,
            "batch_size": self.config.batch_size,
            "processes": self.accelerator.num_processes,
            "device": _device_name(self.accelerator.device),
            "wall_s": round(elapsed, 3),
            "loss_start": sum(head) / len(head) if losses else None,
            "loss_end": sum(tail) / len(tail) if losses else None,
        }
        self.summary_path.write_text(json.dumps(summary, indent=1))


def _averaged(ema: WeightEMA | None) -> Any:
    """A block in which the policy holds the weights checkpoints save."""
    return ema.averaged_weights() if ema is not None else nullcontext()


def _load_ema_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / EMA_STATE
    if not path.is_file():
        raise ValueError(
            f"{checkpoint} was written without EMA, and this run has --ema-decay: resume it "
            "without --ema-decay, or start the stage over (--no-resume)"
        )
    return torch.load(path, weights_only=True)


def _is_default_latent(policy: nn.Module) -> bool:
    stats = policy.normalizer.get_stats()["latent"]
    return all(m == 0.0 for m in stats["mean"]) and all(s == 1.0 for s in stats["std"])


def _tokenizer_key(policy: nn.Module) -> str:
    """Identifies the tokenizer's weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(policy.tokenizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _latent_file_name(store: WindowStore, part: DatasetPart, tokenizer_key: str) -> str:
    """The cache file of one dataset's latents: named by the dataset and a digest of the
    tokenizer, the dataset's path and episode lengths, and the windows' frames."""
    lengths = [len(e.action) for e in store.episodes[part.episodes]]
    identity = [
        tokenizer_key,
        str(part.root.resolve()),
        lengths,
        store.data.frame_stride,
        window_frame_offsets(store.config).tolist(),
    ]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    return f"{part.root.name}-{digest}.pt"


def _names(datasets: tuple[Path, ...]) -> str:
    return "dataset " + " + ".join(str(root) for root in datasets)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
