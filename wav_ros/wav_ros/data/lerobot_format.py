"""Datasets in LeRobot's v2.1 layout: write our demos, read ours and other robots'.

    root/meta/info.json             features (dtype, shape, names), fps, paths, counts
    root/meta/tasks.jsonl           {"task_index", "task"}: the language instructions
    root/meta/episodes.jsonl        {"episode_index", "tasks", "length", "success"}
    root/meta/episodes_stats.jsonl  per-episode statistics (what LeRobot v2.1 aggregates)
    root/meta/stats.json            dataset statistics: mean/std/min/max/q01/q99 per feature
    root/data/chunk-000/episode_000000.parquet
    root/videos/chunk-000/observation.images.cam_high/episode_000000.mp4   (video mode)

Images are PNG bytes inside the parquet ({"bytes", "path"} structs, LeRobot's "image" dtype;
lossless, the default) or one mp4 per episode and camera (LeRobot's "video" dtype; small, lossy).
Besides LeRobot's columns each frame carries `next.reward` (dense task progress), `next.done`,
`next.success` and two value labels: `return_to_go` (discounted sum of future rewards, with a
solved episode's final state absorbing at reward 1) and `value` = (1 - gamma) · return_to_go,
in [0, 1].
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v2.1"
CHUNK_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
IMAGE_PREFIX = "observation.images."
_PNG_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_SCALAR_TYPES = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}


def discounted_value_labels(
    rewards: np.ndarray, success: bool, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """(return_to_go, value) per step for rewards r_0..r_{T-1} in [0, 1].

    After the last step a solved episode stays solved (reward 1 forever: gamma^(T-t)/(1-gamma)
    more), a failed one earns nothing; so value = (1-gamma)·return_to_go lies in [0, 1] and
    tells a solved episode from a failed one near its end.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    rewards = np.asarray(rewards, dtype=np.float64)
    returns = np.zeros(len(rewards))
    tail = 1.0 / (1.0 - gamma) if success else 0.0
    for t in range(len(rewards) - 1, -1, -1):
        tail = rewards[t] + gamma * tail
        returns[t] = tail
    return returns.astype(np.float32), ((1.0 - gamma) * returns).astype(np.float32)


def feature_stats(values: np.ndarray, axis: tuple[int, ...]) -> dict[str, list[Any]]:
    """mean/std/min/max/q01/q99/count over `axis` (LeRobot's stats plus quantiles)."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": values.mean(axis=axis).tolist(),
        "std": values.std(axis=axis).tolist(),
        "min": values.min(axis=axis).tolist(),
        "max": values.max(axis=axis).tolist(),
        "q01": np.quantile(values, 0.01, axis=axis).tolist(),
        "q99": np.quantile(values, 0.99, axis=axis).tolist(),
        "count": [int(np.prod([values.shape[a] for a in axis]))],
    }


def _merge_stats(parts: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """Pool per-episode stats: exact mean/std/min/max; quantiles as count-weighted means."""
    counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
    weights = counts / counts.sum()
    means = np.array([p["mean"] for p in parts])
    mean = np.tensordot(weights, means, axes=1)
    second = np.tensordot(weights, np.array([p["std"] for p in parts]) ** 2 + means**2, axes=1)
    return {
        "mean": mean.tolist(),
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)).tolist(),
        "min": np.min([p["min"] for p in parts], axis=0).tolist(),
        "max": np.max([p["max"] for p in parts], axis=0).tolist(),
        "q01": np.tensordot(weights, np.array([p["q01"] for p in parts]), axes=1).tolist(),
        "q99": np.tensordot(weights, np.array([p["q99"] for p in parts]), axes=1).tolist(),
        "count": [int(counts.sum())],
    }


def content_checksum(images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray) -> str:
    """sha256 of the raw frames (cameras in name order), float32 states and actions."""
    digest = hashlib.sha256()
    for camera in sorted(images):
        digest.update(np.ascontiguousarray(images[camera], dtype=np.uint8).tobytes())
    for array in (state, action):
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@dataclass
class Episode:
    """One demonstration, frame-aligned: element t is what was seen and done at step t."""

    images: dict[str, np.ndarray]
    """Camera → (T, H, W, 3) uint8."""
    state: np.ndarray
    """(T, D) observation.state (joint positions)."""
    action: np.ndarray
    """(T, A) action sent at step t."""
    reward: np.ndarray
    """(T,) reward received after action t (dense progress)."""
    success: np.ndarray
    """(T,) whether the task was solved after action t (latched)."""
    task: str
    """The language instruction."""

    def __post_init__(self) -> None:
        length = len(self.action)
        for name, column in (
            ("state", self.state),
            ("reward", self.reward),
            ("success", self.success),
        ):
            if len(column) != length:
                raise ValueError(f"episode {name} has {len(column)} frames, action has {length}")
        for camera, frames in self.images.items():
            if frames.shape[0] != length or frames.ndim != 4 or frames.dtype != np.uint8:
                raise ValueError(
                    f"camera {camera}: need ({length}, H, W, 3) uint8, "
                    f"got {frames.shape} {frames.dtype}"
                )
        if length == 0:
            raise ValueError("an episode needs at least one frame")
        if not self.task:
            raise ValueError("an episode needs its task instruction")


@dataclass
class WriterConfig:
    """How a dataset is written."""

    fps: int = 50
    """Frames per second (the control rate)."""
    robot_type: str = "aloha"
    """LeRobot's robot_type field."""
    state_names: tuple[str, ...] = ()
    """Names of the state/action dimensions (info.json `names`)."""
    image_mode: str = "image"
    """`image`: PNG in parquet (lossless); `video`: mp4 per episode and camera (h264, lossy)."""
    gamma: float = 0.99
    """Discount of the value labels."""
    overwrite: bool = False
    """Replace an existing dataset at root."""

    def __post_init__(self) -> None:
        if self.image_mode not in ("image", "video"):
            raise ValueError(f"image_mode must be 'image' or 'video', got {self.image_mode!r}")
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma}")


class LeRobotDatasetWriter:
    """Append episodes, then finalize() writes the metadata and statistics."""

    def __init__(self, root: str | Path, config: WriterConfig | None = None) -> None:
        self.root = Path(root)
        self.config = config or WriterConfig()
        if self.root.exists() and any(self.root.iterdir()):
            if not self.config.overwrite:
                raise FileExistsError(f"{self.root} is not empty (use overwrite=True)")
            shutil.rmtree(self.root)
        (self.root / "meta").mkdir(parents=True)
        self._tasks: dict[str, int] = {}
        self._episodes: list[dict[str, Any]] = []
        self._episode_stats: list[dict[str, Any]] = []
        self._features: dict[str, dict[str, Any]] | None = None
        self._frames = 0

    def _make_features(self, episode: Episode) -> dict[str, dict[str, Any]]:
        features: dict[str, dict[str, Any]] = {}
        for camera, frames in episode.images.items():
            _, height, width, channels = frames.shape
            feature = {
                "dtype": self.config.image_mode,
                "shape": [height, width, channels],
                "names": ["height", "width", "channels"],
            }
            if self.config.image_mode == "video":
                feature["info"] = {
                    "video.fps": self.config.fps,
                    "video.height": height,
                    "video.width": width,
                    "video.channels": channels,
                    "video.codec": "h264",
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "has_audio": False,
                }
            features[IMAGE_PREFIX + camera] = feature
        names = list(self.config.state_names) or None
        for key, array in (("observation.state", episode.state), ("action", episode.action)):
            features[key] = {"dtype": "float32", "shape": [array.shape[1]], "names": names}
        for key, dtype in (
            ("timestamp", "float32"),
            ("frame_index", "int64"),
            ("episode_index", "int64"),
            ("index", "int64"),
            ("task_index", "int64"),
            ("next.reward", "float32"),
            ("next.done", "bool"),
            ("next.success", "bool"),
            ("return_to_go", "float32"),
            ("value", "float32"),
        ):
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        return features

    def add_episode(self, episode: Episode) -> int:
        """Write one episode's parquet (and videos); returns its episode_index."""
        features = self._make_features(episode)
        if self._features is None:
            self._features = features
        elif features != self._features:
            raise ValueError("episode features (cameras, sizes, dims) differ from the dataset's")
        index = len(self._episodes)
        length = len(episode.action)
        task_index = self._tasks.setdefault(episode.task, len(self._tasks))
        succeeded = bool(episode.success[-1])
        returns, values = discounted_value_labels(episode.reward, succeeded, self.config.gamma)
        columns: dict[str, pa.Array] = {}
        for camera, frames in episode.images.items():
            key = IMAGE_PREFIX + camera
            if self.config.image_mode == "image":
                columns[key] = pa.array(
                    [{"bytes": _encode_png(f), "path": None} for f in frames], type=_PNG_STRUCT
                )
            else:
                self._write_video(key, index, frames)
        columns["observation.state"] = pa.array(
            list(episode.state.astype(np.float32)), pa.list_(pa.float32())
        )
        columns["action"] = pa.array(
            list(episode.action.astype(np.float32)), pa.list_(pa.float32())
        )
        scalars = {
            "timestamp": np.arange(length, dtype=np.float32) / self.config.fps,
            "frame_index": np.arange(length),
            "episode_index": np.full(length, index),
            "index": np.arange(self._frames, self._frames + length),
            "task_index": np.full(length, task_index),
            "next.reward": episode.reward.astype(np.float32),
            "next.done": np.arange(length) == length - 1,
            "next.success": episode.success.astype(bool),
            "return_to_go": returns,
            "value": values,
        }
        for key, column in scalars.items():
            columns[key] = pa.array(column, type=_SCALAR_TYPES[features[key]["dtype"]])
        path = self.root / DATA_PATH.format(episode_chunk=index // CHUNK_SIZE, episode_index=index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        stats = {
            key: feature_stats(value.reshape(length, -1), axis=(0,))
            for key, value in (
                ("observation.state", episode.state),
                ("action", episode.action),
                *((k, scalars[k].astype(np.float64)) for k in scalars),
            )
        }
        for camera, frames in episode.images.items():
            # LeRobot's image stats: per channel in [0, 1], shape (3, 1, 1); every 10th frame.
            sample = frames[::10].astype(np.float64) / 255.0
            per_channel = feature_stats(sample, axis=(0, 1, 2))
            stats[IMAGE_PREFIX + camera] = {
                k: (np.reshape(v, (-1, 1, 1)).tolist() if k != "count" else v)
                for k, v in per_channel.items()
            }
        self._episode_stats.append({"episode_index": index, "stats": stats})
        record = {
            "episode_index": index,
            "tasks": [episode.task],
            "length": length,
            "success": succeeded,
        }
        if self.config.image_mode == "image":
            record["checksum"] = content_checksum(episode.images, episode.state, episode.action)
        self._episodes.append(record)
        self._frames += length
        return index

    def _write_video(self, key: str, index: int, frames: np.ndarray) -> None:
        import imageio.v2 as imageio

        path = self.root / VIDEO_PATH.format(
            episode_chunk=index // CHUNK_SIZE, video_key=key, episode_index=index
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimwrite(
            path,
            list(frames),
            fps=self.config.fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
        )

    def finalize(self) -> Path:
        """Write meta/: info, tasks, episodes, per-episode and pooled statistics."""
        if not self._episodes or self._features is None:
            raise ValueError("no episodes were added")
        meta = self.root / "meta"
        n_episodes = len(self._episodes)
        video_keys = [k for k, f in self._features.items() if f["dtype"] == "video"]
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.config.robot_type,
            "total_episodes": n_episodes,
            "total_frames": self._frames,
            "total_tasks": len(self._tasks),
            "total_videos": n_episodes * len(video_keys),
            "total_chunks": (n_episodes - 1) // CHUNK_SIZE + 1,
            "chunks_size": CHUNK_SIZE,
            "fps": self.config.fps,
            "splits": {"train": f"0:{n_episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys else None,
            "features": self._features,
            "value_labels": {"gamma": self.config.gamma, "reward": "dense task progress in [0, 1]"},
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        _write_jsonl(
            meta / "tasks.jsonl", [{"task_index": i, "task": t} for t, i in self._tasks.items()]
        )
        _write_jsonl(meta / "episodes.jsonl", self._episodes)
        _write_jsonl(meta / "episodes_stats.jsonl", self._episode_stats)
        pooled = {
            key: _merge_stats([e["stats"][key] for e in self._episode_stats])
            for key in self._episode_stats[0]["stats"]
        }
        (meta / "stats.json").write_text(json.dumps(pooled, indent=1))
        return self.root


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Window:
    """A training sample around frame t of one episode (what the WAV trainer consumes)."""

    memory_images: dict[str, np.ndarray]
    """Camera → (n_memory, H, W, 3): frames t - (n_memory-1)·stride .. t (clamped at 0)."""
    future_images: dict[str, np.ndarray]
    """Camera → (n_future, H, W, 3): frames t + stride .. t + n_future·stride (clamped)."""
    state: np.ndarray
    """(D,) state at t."""
    actions: np.ndarray
    """(chunk, A) actions t .. t+chunk-1, the last one repeated past the end."""
    future_states: np.ndarray
    """(chunk, D) states t+1 .. t+chunk, the last one repeated past the end."""
    action_mask: np.ndarray
    """(chunk,) True where the action is real, False where it pads past the episode's end."""
    values: np.ndarray
    """(chunk,) value labels t .. t+chunk-1 (padded like actions)."""
    instruction: str
    frame_index: int
    episode_index: int


@dataclass
class LeRobotDataset:
    """Read a LeRobot v2.x dataset (ours or another robot's): meta, episodes, frames, windows."""

    root: Path
    info: dict[str, Any] = field(init=False)
    tasks: dict[int, str] = field(init=False)
    episodes: list[dict[str, Any]] = field(init=False)
    stats: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"not a LeRobot dataset (no meta/info.json): {self.root}")
        self.info = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v2"):
            raise ValueError(
                f"{self.root}: LeRobot {version or 'unknown'} layout; this reader handles v2.x "
                "(convert v3 datasets with LeRobot's converter first)"
            )
        self.tasks = {
            row["task_index"]: row["task"]
            for row in _read_jsonl(self.root / "meta" / "tasks.jsonl")
        }
        self.episodes = _read_jsonl(self.root / "meta" / "episodes.jsonl")
        stats_path = self.root / "meta" / "stats.json"
        self.stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        self._cache: dict[tuple[int, bool], dict[str, Any]] = {}
        self._offsets = np.cumsum([0] + [e["length"] for e in self.episodes])

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("image", "video")]

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def episode(self, episode_index: int, images: bool = True) -> dict[str, Any]:
        """All columns of an episode as numpy arrays (images decoded to (T, H, W, 3) uint8).

        images=False leaves the cameras out, neither read nor decoded: most of an episode's
        bytes and nearly all of its reading time.
        """
        if not 0 <= episode_index < self.num_episodes:
            raise IndexError(f"episode {episode_index} not in 0..{self.num_episodes - 1}")
        if (episode_index, images) in self._cache:
            return self._cache[episode_index, images]
        chunk = episode_index // int(self.info.get("chunks_size", CHUNK_SIZE))
        path = self.root / self.info["data_path"].format(
            episode_chunk=chunk, episode_index=episode_index
        )
        cameras = set(self.camera_keys)
        names = [n for n in pq.read_schema(path).names if images or n not in cameras]
        table = pq.read_table(path, columns=names)
        columns: dict[str, Any] = {}
        for key in table.column_names:
            feature = self.features.get(key, {})
            values = table.column(key).to_pylist()
            if feature.get("dtype") == "image":
                columns[key] = np.stack([_decode_png(v["bytes"]) for v in values])
            elif isinstance(values[0], list):
                columns[key] = np.asarray(values, dtype=feature.get("dtype", "float32"))
            else:
                columns[key] = np.asarray(values)
        for key in self.camera_keys:
            if images and self.features[key]["dtype"] == "video":
                columns[key] = self._read_video(key, chunk, episode_index)
        task_index = int(columns["task_index"][0]) if "task_index" in columns else 0
        columns["task"] = self.tasks.get(task_index, "")
        # keep one episode: datasets outgrow memory
        self._cache = {(episode_index, images): columns}
        return columns

    def verify(self, episode_index: int) -> bool:
        """Whether the episode reads back bit-identical to what was written (PNG datasets)."""
        expected = self.episodes[episode_index].get("checksum")
        if expected is None:
            raise ValueError(f"episode {episode_index} has no checksum (video or foreign dataset)")
        columns = self.episode(episode_index)
        images = {k[len(IMAGE_PREFIX) :]: columns[k] for k in self.camera_keys}
        actual = content_checksum(images, columns["observation.state"], columns["action"])
        return actual == expected

    def _read_video(self, key: str, chunk: int, episode_index: int) -> np.ndarray:
        import imageio.v2 as imageio

        path = self.root / self.info["video_path"].format(
            episode_chunk=chunk, video_key=key, episode_index=episode_index
        )
        with imageio.get_reader(path) as reader:
            return np.stack([np.asarray(frame)[..., :3] for frame in reader])

    def locate(self, index: int) -> tuple[int, int]:
        """Global frame index → (episode_index, frame_index)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} not in 0..{len(self) - 1}")
        episode = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return episode, index - int(self._offsets[episode])

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One frame: every column at that step, plus its task text."""
        episode_index, t = self.locate(index)
        columns = self.episode(episode_index)
        return {k: (v if k == "task" else v[t]) for k, v in columns.items()}

    def window(
        self,
        episode_index: int,
        t: int,
        *,
        n_memory: int = 4,
        n_future: int = 4,
        stride: int = 1,
        chunk: int = 36,
        state_key: str = "observation.state",
        value_key: str = "value",
    ) -> Window:
        """Memory frames, future frames, state, action chunk, future states and values at t."""
        columns = self.episode(episode_index)
        length = len(columns["action"])
        if not 0 <= t < length:
            raise IndexError(f"frame {t} not in episode {episode_index} (length {length})")
        if min(n_memory, n_future, stride, chunk) < 1:
            raise ValueError("n_memory, n_future, stride and chunk must be >= 1")
        memory = np.clip(t - stride * np.arange(n_memory - 1, -1, -1), 0, length - 1)
        future = np.clip(t + stride * np.arange(1, n_future + 1), 0, length - 1)
        steps = t + np.arange(chunk)
        clamped = np.minimum(steps, length - 1)
        states = columns[state_key]
        values = columns[value_key] if value_key in columns else np.zeros(length, np.float32)
        return Window(
            memory_images={k: columns[k][memory] for k in self.camera_keys},
            future_images={k: columns[k][future] for k in self.camera_keys},
            state=states[t],
            actions=columns["action"][clamped],
            future_states=states[np.minimum(steps + 1, length - 1)],
            action_mask=steps < length,
            values=values[clamped],
            instruction=columns["task"],
            frame_index=t,
            episode_index=episode_index,
        )
