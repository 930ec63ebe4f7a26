"""Batched inference: preprocess -> forward -> postprocess, kept apart.

Batches are cut by a token budget, not a count (as text-embeddings-inference's max-batch-tokens):
texts are tokenised once, in bulk, with the fast tokenizer, sorted by length, and packed so that
``rows x longest row <= max_batch_tokens``. Short posts then travel in large batches and long ones in
small batches, and padding per batch stays near zero. Results come back in input order.

On CUDA the host tensors are pinned and copied without blocking, and the next batch is collated on
the CPU while the GPU runs the current one (the forward call only queues kernels; the first
``.cpu()`` of a result waits for them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Characters beyond this multiple of max_length tokens can never reach the model; cutting them
# before tokenisation keeps a 1 MB post from costing a second of tokenizer time.
CHARS_PER_TOKEN_CAP = 16


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]
    truncated: list[bool]


@dataclass(frozen=True)
class EngineOptions:
    max_length: int = 128
    max_batch_tokens: int = 8192
    max_batch_size: int = 256
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast); fp16 only on CUDA


class InferenceEngine:
    def __init__(self, model: torch.nn.Module, tokenizer, *, device: torch.device, input_prefix: str = "",
                 options: EngineOptions = EngineOptions()) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.prefix = input_prefix
        self.options = options
        self.pad_id = int(tokenizer.pad_token_id)
        if options.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {options.precision!r}")
        if options.precision == "fp16" and device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16 or fp32 on the CPU")

    # -- preprocess ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> Encoded:
        limit = self.options.max_length * CHARS_PER_TOKEN_CAP
        cut = [t if len(t) <= limit else t[:limit] for t in texts]
        enc = self.tokenizer([self.prefix + t for t in cut], add_special_tokens=True, truncation=True,
                             max_length=self.options.max_length, return_overflowing_tokens=False)
        ids = enc["input_ids"]
        full = self.options.max_length
        truncated = [len(t) > limit or len(i) >= full for t, i in zip(texts, ids)]
        return Encoded(ids=ids, truncated=truncated)

    def plan(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Index batches, longest first, each within the token budget (at least one row each)."""
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        batches: list[np.ndarray] = []
        start = 0
        budget, cap = self.options.max_batch_tokens, self.options.max_batch_size
        while start < len(order):
            longest = lengths[order[start]]
            rows = max(1, min(cap, budget // max(1, longest)))
            batches.append(order[start : start + rows])
            start += rows
        return batches

    def _collate(self, ids: list[list[int]], index: np.ndarray) -> dict[str, torch.Tensor]:
        rows = [ids[i] for i in index]
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            input_ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if self.device.type == "cuda":
            batch = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
        return batch

    # -- forward ------------------------------------------------------------------------------
    def _autocast(self):
        if self.options.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.options.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with self._autocast():
            logits = self.model(**batch).logits
        return torch.softmax(logits.float(), dim=-1)

    def forward_batches(self, encoded: Encoded) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices, probabilities) per batch; the next batch is collated while this one runs."""
        batches = self.plan([len(i) for i in encoded.ids])
        if not batches:
            return
        with torch.inference_mode():
            pending_index, pending = batches[0], self._forward(self._collate(encoded.ids, batches[0]))
            for index in batches[1:]:
                nxt = self._collate(encoded.ids, index)
                yield pending_index, pending.cpu().numpy()
                pending_index, pending = index, self._forward(nxt)
            yield pending_index, pending.cpu().numpy()

    # -- postprocess --------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, Encoded]:
        encoded = self.encode(texts) if texts else Encoded([], [])
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for index, probs in self.forward_batches(encoded):
            out[index] = probs
        return out, encoded
