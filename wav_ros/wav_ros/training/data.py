"""Training samples from a LeRobot-format dataset, held in memory at the model's resolution.

Each episode is read once; only the frames the sampled windows need are kept (resized to the
model's image size with the same `resize_images` the ROS nodes use, so training sees what
inference sees). After the tokenizer stage the kept frames are replaced by their VAE latents
(`cache_latents`): every later stage then skips the VAE, the dominant CPU cost.

A batch is a pure function of (seed, step, rank): a run resumed at step s draws exactly the
batches the uninterrupted run would have, and every process of a multi-GPU run its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wav_ros.data.lerobot_format import IMAGE_PREFIX, LeRobotDataset
from wav_ros.model import WAVConfig, resize_images

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMITATE: tuple[str, ...] = ("all", "successful")


@dataclass
class DataConfig:
    """Which windows of the dataset are training samples."""

    frame_stride: int = 1
    """Windows start at every k-th frame of an episode; only the frames those windows need are
    decoded and kept (k = 4 keeps about a quarter of the images)."""
    value_key: str = "value"
    """Per-frame value label column (ours: (1 - gamma)·return-to-go in [0, 1])."""
    max_episodes: int | None = None
    """Use only the first N episodes (None: all)."""
    imitate: str = "all"
    """Episodes the action stage imitates (WAV's action expert, the direct baseline): "all",
    or "successful", which leaves the failed rollouts, recorded so that the value expert sees
    both outcomes, to the video and value stages instead of teaching the arms to fail."""
    state_noise: float = 0.0
    """Standard deviation of Gaussian noise added to each window's joint-state input (rad for
    the arm joints), never to the targets. A policy that reads the joint state can lean on it
    and continue wherever the arms are instead of reading the cameras; the noise makes that
    shortcut unreliable. Only the action stage reads the state."""

    def __post_init__(self) -> None:
        if self.imitate not in IMITATE:
            raise ValueError(f"imitate must be one of {IMITATE}, got {self.imitate!r}")
        if not isinstance(self.frame_stride, int) or self.frame_stride < 1:
            raise ValueError(f"frame_stride must be a positive int, got {self.frame_stride!r}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1 or None, got {self.max_episodes}")
        if not (math.isfinite(self.state_noise) and self.state_noise >= 0):
            raise ValueError(f"state_noise must be a finite float >= 0, got {self.state_noise}")


@dataclass
class _Episode:
    state: np.ndarray
    """(T, D) float32."""
    action: np.ndarray
    """(T, A) float32."""
    value: np.ndarray
    """(T,) float32."""
    instruction: str
    frame_rows: np.ndarray
    """(T,) row of each frame in the kept images/latents, -1 where not kept."""
    images: np.ndarray | None
    """(kept, V, H, W, 3) uint8 at the model's size (None once latents are cached, or when the
    store was read without images)."""
    latents: Tensor | None = None
    """(kept, V, C, h, h) float32 raw VAE latents."""
    success: bool = False


@dataclass(frozen=True)
class DatasetPart:
    """The episodes one dataset gave a store, `episodes[first : first + count]`: the unit the
    latent cache keeps, so that a run on one more dataset encodes only that one."""

    root: Path
    first: int
    count: int

    @property
    def episodes(self) -> slice:
        return slice(self.first, self.first + self.count)


@dataclass
class WindowStore:
    """In-memory training windows of one dataset for one model config."""

    config: WAVConfig
    data: DataConfig
    episodes: list[_Episode]
    anchors: np.ndarray
    """(N, 2) int64 (episode, frame) of every training window."""
    stats: dict[str, Any] = field(default_factory=dict)
    """The dataset's meta/stats.json (empty for several datasets)."""
    latent_key: str | None = None
    """Identifies the tokenizer whose latents are cached (None: none cached)."""
    parts: list[DatasetPart] = field(default_factory=list)
    """Which episodes each dataset gave, in order."""

    @classmethod
    def from_dataset(
        cls,
        root: str | Path,
        config: WAVConfig,
        data: DataConfig | None = None,
        images: bool = True,
    ) -> WindowStore:
        """The windows of one dataset; images=False skips reading the frames (for a run whose
        latents are cached already, or that only needs the normalisation)."""
        data = data or DataConfig()
        dataset = LeRobotDataset(Path(root))
        cameras = [IMAGE_PREFIX + name for name in config.camera_names]
        missing = [c for c in cameras if c not in dataset.camera_keys]
        if missing:
            raise ValueError(
                f"dataset {root} lacks the model's cameras {missing}; it has {dataset.camera_keys}"
            )
        for key in (STATE_KEY, ACTION_KEY):
            if key not in dataset.features:
                raise ValueError(f"dataset {root} has no {key!r} feature")
        offsets = window_frame_offsets(config)
        count = dataset.num_episodes
        if data.max_episodes is not None:
            count = min(count, data.max_episodes)
        episodes, anchors = [], []
        for index in range(count):
            columns = dataset.episode(index, images=images)
            length = len(columns[ACTION_KEY])
            starts = np.arange(0, length, data.frame_stride)
            needed = np.unique(np.clip(starts[:, None] + offsets[None], 0, length - 1))
            rows = np.full(length, -1, dtype=np.int64)
            rows[needed] = np.arange(len(needed))
            size = config.tokenizer.image_size
            kept = _kept_images(columns, cameras, needed, size) if images else None
            if data.value_key not in columns:
                raise ValueError(f"dataset {root} has no value label column {data.value_key!r}")
            success = bool(columns["next.success"][-1]) if "next.success" in columns else False
            episodes.append(
                _Episode(
                    state=np.asarray(columns[STATE_KEY], np.float32),
                    action=np.asarray(columns[ACTION_KEY], np.float32),
                    value=np.asarray(columns[data.value_key], np.float32).reshape(length),
                    instruction=columns["task"],
                    frame_rows=rows,
                    images=kept,
                    success=success,
                )
            )
            anchors.extend((index, int(t)) for t in starts)
        part = DatasetPart(Path(root), 0, len(episodes))
        return cls(
            config, data, episodes, np.asarray(anchors, np.int64), dataset.stats, parts=[part]
        )

    @classmethod
    def from_datasets(
        cls,
        roots: list[str | Path],
        config: WAVConfig,
        data: DataConfig | None = None,
        images: bool = True,
    ) -> WindowStore:
        """The windows of several datasets as one store (episodes in the order given;
        `max_episodes` counts over all of them). Several datasets' normalisation is computed
        from their frames, since per-dataset quantiles do not combine."""
        data = data or DataConfig()
        if not roots:
            raise ValueError("no dataset given")
        stores: list[WindowStore] = []
        remaining = data.max_episodes
        for root in roots:
            if remaining == 0:
                break
            part = replace(data, max_episodes=remaining)
            stores.append(cls.from_dataset(root, config, part, images))
            if remaining is not None:
                remaining -= len(stores[-1].episodes)
        if len(stores) == 1:
            return stores[0]
        widths = {(s.episodes[0].state.shape[1], s.episodes[0].action.shape[1]) for s in stores}
        if len(widths) > 1:
            raise ValueError(
                f"datasets {[str(r) for r in roots]} differ in (state, action) widths {widths}"
            )
        episodes, anchors, parts = [], [], []
        for store in stores:
            anchors.append(store.anchors + np.asarray([len(episodes), 0], np.int64))
            parts.append(replace(store.parts[0], first=len(episodes)))
            episodes.extend(store.episodes)
        return cls(config, data, episodes, np.concatenate(anchors), parts=parts)

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def has_latents(self) -> bool:
        return all(e.latents is not None for e in self.episodes)

    @property
    def has_images(self) -> bool:
        return all(e.images is not None for e in self.episodes)

    def latents_fit(self, latents: list[Tensor], part: DatasetPart) -> bool:
        """Whether `latents` (one (kept, V, C, h, h) tensor per episode, as `cache_latents`
        leaves them) cover exactly the kept frames of `part`'s episodes."""
        views = len(self.config.camera_names)
        episodes = self.episodes[part.episodes]
        return len(latents) == len(episodes) and all(
            len(lat) == int((e.frame_rows >= 0).sum()) and lat.shape[1] == views
            for e, lat in zip(episodes, latents, strict=False)
        )

    def attach_latents(self, latents: list[Tensor], part: DatasetPart) -> None:
        """Take `part`'s latents cached earlier by `cache_latents` instead of encoding its
        frames again; its frames are dropped."""
        if not self.latents_fit(latents, part):
            raise ValueError(
                f"the latents do not match the episodes and kept frames of {part.root}"
            )
        for episode, episode_latents in zip(self.episodes[part.episodes], latents, strict=True):
            episode.latents, episode.images = episode_latents, None

    @property
    def num_failed_episodes(self) -> int:
        return sum(not e.success for e in self.episodes)

    def imitation_windows(self) -> WindowStore:
        """The windows the action stage draws from (`DataConfig.imitate`): this store, or a
        view of it without the failed episodes' windows (the episodes themselves are shared,
        so latents cached in either serve both)."""
        if self.data.imitate == "all":
            return self
        keep = np.fromiter((self.episodes[e].success for e in self.anchors[:, 0]), bool)
        if not keep.any():
            raise ValueError("imitate='successful', but no episode of the dataset succeeded")
        return replace(self, anchors=self.anchors[keep])

    def all_images(self) -> np.ndarray:
        """Every kept frame of every view, (N, H, W, 3) uint8 (for the tokenizer stage)."""
        self._require_images()
        return np.concatenate([e.images.reshape(-1, *e.images.shape[-3:]) for e in self.episodes])

    @torch.no_grad()
    def cache_latents(
        self,
        encode: Any,
        part: DatasetPart | None = None,
        batch_size: int = 64,
        progress: Any = None,
    ) -> list[Tensor]:
        """Replace the kept frames of `part`'s episodes (None: every episode) by
        `encode(uint8 (B, H, W, 3)) -> (B, C, h, h)`, drop them, and return the latents."""
        episodes = self.episodes[part.episodes] if part is not None else self.episodes
        self._require_images(episodes)
        for episode in episodes:
            flat = episode.images.reshape(-1, *episode.images.shape[-3:])
            parts = [
                encode(torch.from_numpy(flat[i : i + batch_size]))
                for i in range(0, len(flat), batch_size)
            ]
            latents = torch.cat(parts).float().cpu()
            episode.latents = latents.reshape(*episode.images.shape[:2], *latents.shape[1:])
            episode.images = None
            if progress is not None:
                progress.update(1)
        return [e.latents for e in episodes]

    def latent_stats(self) -> dict[str, list[float]]:
        """Per-channel mean/std of the cached latents (the Normalizer's `latent` group)."""
        if not self.has_latents:
            raise RuntimeError("cache_latents first")
        flat = torch.cat(
            [e.latents.transpose(0, 2).reshape(e.latents.shape[2], -1) for e in self.episodes],
            dim=1,
        )
        return {"mean": flat.mean(1).tolist(), "std": flat.std(1).clamp_min(1e-6).tolist()}

    def normalization_stats(self) -> dict[str, dict[str, list[float]]]:
        """Action/state q01/q99 (from the dataset's stats, else from the frames) and value
        mean/std (a joint that never moves gets a ±1e-3 band, since q99 must exceed q01)."""
        stats = {}
        for group, key in (("action", ACTION_KEY), ("state", STATE_KEY)):
            if key in self.stats:
                low = np.asarray(self.stats[key]["q01"], np.float64)
                high = np.asarray(self.stats[key]["q99"], np.float64)
            else:
                values = np.concatenate([getattr(e, group) for e in self.episodes])
                low, high = np.quantile(values, 0.01, 0), np.quantile(values, 0.99, 0)
            flat = high - low < 2e-3
            centre = (low + high) / 2
            low = np.where(flat, centre - 1e-3, low)
            high = np.where(flat, centre + 1e-3, high)
            stats[group] = {"q01": low.tolist(), "q99": high.tolist()}
        values = np.concatenate([e.value for e in self.episodes])
        stats["value"] = {"mean": [float(values.mean())], "std": [max(float(values.std()), 1e-3)]}
        return stats

    def batch(
        self, batch_size: int, seed: int, step: int, rank: int = 0, images: bool = False
    ) -> dict[str, Any]:
        """The batch of training step `step` (a pure function of its arguments).

        images=False gives "latents" (needs cache_latents), True gives uint8 "images";
        "episode_index" and "frame_index" say where each window starts; "state" carries
        DataConfig.state_noise.
        """
        generator = torch.Generator().manual_seed(_mix(seed, step, rank))
        picks = torch.randint(len(self.anchors), (batch_size,), generator=generator).numpy()
        offsets = window_frame_offsets(self.config)
        chunk = self.config.chunk_size
        frames, states, actions, futures, values, texts = [], [], [], [], [], []
        for episode_index, t in self.anchors[picks]:
            episode = self.episodes[episode_index]
            length = len(episode.action)
            rows = episode.frame_rows[np.clip(t + offsets, 0, length - 1)]
            source = episode.images if images else episode.latents
            if source is None:
                raise RuntimeError("latents are not cached yet" if not images else "no images")
            frames.append(source[rows].swapaxes(0, 1) if images else source[rows].transpose(0, 1))
            steps = np.minimum(t + np.arange(chunk), length - 1)
            states.append(episode.state[t])
            actions.append(episode.action[steps])
            futures.append(episode.state[np.minimum(t + 1 + np.arange(chunk), length - 1)])
            values.append(episode.value[steps])
            texts.append(episode.instruction)
        state = torch.from_numpy(np.stack(states))
        if self.data.state_noise > 0:
            state = state + self.data.state_noise * torch.randn(state.shape, generator=generator)
        batch: dict[str, Any] = {
            "instruction": texts,
            "state": state,
            "actions": torch.from_numpy(np.stack(actions)),
            "future_states": torch.from_numpy(np.stack(futures)),
            "values": torch.from_numpy(np.stack(values))[..., None],
            "episode_index": torch.from_numpy(self.anchors[picks, 0]),
            "frame_index": torch.from_numpy(self.anchors[picks, 1]),
        }
        if images:
            batch["images"] = torch.from_numpy(np.ascontiguousarray(np.stack(frames)))
        else:
            batch["latents"] = torch.stack(frames)
        return batch

    def _require_images(self, episodes: list[_Episode] | None = None) -> None:
        if any(e.images is None for e in (self.episodes if episodes is None else episodes)):
            raise RuntimeError(
                "no frames in memory: replaced by latents already, or read with images=False"
            )


def _kept_images(
    columns: dict[str, Any], cameras: list[str], frames: np.ndarray, size: int
) -> np.ndarray:
    """The episode's frames the windows need, (kept, V, size, size, 3) uint8."""
    images = np.empty((len(frames), len(cameras), size, size, 3), dtype=np.uint8)
    for row, frame in enumerate(frames):
        views = {c: columns[c][frame] for c in cameras}
        resized = resize_images(views, size) if _needs_resize(views, size) else views
        images[row] = np.stack([resized[c] for c in cameras])
    return images


def window_frame_offsets(config: WAVConfig) -> np.ndarray:
    """Frame offsets from t of a window's memory frames (oldest first) then future frames."""
    memory = -config.memory_stride * np.arange(config.memory_frames - 1, -1, -1)
    return np.concatenate([memory, np.asarray(config.future_frame_offsets)]).astype(np.int64)


def _needs_resize(views: dict[str, np.ndarray], size: int) -> bool:
    return any(image.shape[:2] != (size, size) for image in views.values())


def _mix(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed from (seed, step, rank), different for each triple."""
    return int(
        np.random.SeedSequence([seed, step, rank]).generate_state(2, np.uint32).view(np.uint64)[0]
        >> np.uint64(1)
    )
