"""Batched inference: preprocess -> forward -> postprocess, kept apart.

Batches are cut by a token budget, not a count (as text-embeddings-inference's max-batch-tokens):
texts are tokenised once, in bulk (SentencePiece for the XLM-R tokenizer, see
``models.compact_tokenizer``; else the fast tokenizer), sorted by length, and packed so that
``rows x padded width <= max_batch_tokens``. Short posts then travel in large batches and long ones in
small batches, and padding per batch stays near zero. Results come back in input order.

The forward pass is a backend: :class:`TorchBackend` (fp32, or bf16/fp16 autocast; on CUDA with
pinned host memory and non-blocking copies) or :class:`models.onnx_backend.OnnxBackend` (ONNX
Runtime, int8, the fast CPU path). A backend's ``submit`` may return before the work is done; the
engine collates the next batch on the CPU while the device runs the current one and only then waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

# Characters beyond this multiple of max_length tokens can never reach the model; cutting them
# before tokenisation keeps a 1 MB post from costing a second of tokenizer time.
CHARS_PER_TOKEN_CAP = 16
TORCH_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]
    truncated: list[bool]


# Token budget per batch when the caller sets none. On a CPU, 2,048-token batches stay in cache:
# bf16 300 posts/s and 1.3 GB RSS against 255 posts/s and 1.6 GB at 8,192 (int8: 260 against 147);
# a GPU needs big batches to be busy.
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 8192
# PyTorch on a CPU runs oneDNN kernels, cached per input shape: with every width from 3 to 96 tokens
# in use the cache held ~180 MB (bf16), with widths in steps of 8 ~60 MB, for ~6% of throughput;
# tensor cores want multiples of 8 as well. ONNX Runtime keeps no such cache and only loses (12%).
TORCH_PAD_MULTIPLE = 8


def pad_multiple_for(precision: str) -> int:
    return 1 if precision == "int8" else TORCH_PAD_MULTIPLE


def default_batch_tokens(device_type: str) -> int:
    return GPU_BATCH_TOKENS if device_type == "cuda" else CPU_BATCH_TOKENS


@dataclass(frozen=True)
class EngineOptions:
    max_length: int = 128
    max_batch_tokens: int = 8192
    max_batch_size: int = 256
    # Batch widths are rounded up to a multiple of this (see pad_multiple_for).
    pad_multiple: int = 1

    def __post_init__(self) -> None:
        if min(self.max_length, self.max_batch_tokens, self.max_batch_size, self.pad_multiple) < 1:
            raise ValueError(f"engine options must all be positive: {self}")

    def width(self, longest: int) -> int:
        return min(-(-longest // self.pad_multiple) * self.pad_multiple, max(longest, self.max_length))


class Tokenizer(Protocol):
    """What the engine asks of a tokenizer: a ``transformers`` fast one, or
    :class:`models.compact_tokenizer.CompactTokenizer`."""

    pad_token_id: int

    def __call__(self, texts: Sequence[str], *, add_special_tokens: bool, truncation: bool,
                 max_length: int) -> dict[str, list[list[int]]]: ...


class Pending(Protocol):
    def result(self) -> np.ndarray: ...


class Backend(Protocol):
    name: str

    def submit(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Pending: ...


@dataclass
class Ready:
    probs: np.ndarray

    def result(self) -> np.ndarray:
        return self.probs


@dataclass
class OnDevice:
    probs: torch.Tensor

    def result(self) -> np.ndarray:
        return self.probs.float().cpu().numpy()


def wants_bf16_table(precision: str, device_type: str) -> bool:
    """bf16 on a CPU, where host memory is what a scorer is short of (see bf16_word_embeddings)."""
    return precision == "bf16" and device_type == "cpu"


def bf16_word_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """Keep the word-embedding table in bf16 (autocast leaves lookups in fp32), rows cast up on use.
    Changes ``model`` in place.

    The table is 80% of the default model's weights (250,037 x 384): 192 MB instead of 384 MB of host
    memory. UMSAB test, 4,000 posts: 1 label differs from fp32 (4 with plain bf16 autocast), max |dp|
    0.012. Every other tensor is copied off the checkpoint's memory map, so the map, and the fp32
    pages the cast read, are released.
    """
    emb = model.get_input_embeddings()
    emb.weight = torch.nn.Parameter(emb.weight.detach().to(torch.bfloat16), requires_grad=False)
    emb.register_forward_hook(lambda _module, _inputs, out: out.float())
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor is not emb.weight:
            tensor.data = tensor.data.clone()
    return model


class TorchBackend:
    """A ``transformers`` sequence classifier in eager PyTorch."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 compile: bool = False) -> None:
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(TORCH_PRECISIONS)} (or int8 via ONNX), not {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("fp16 autocast needs a CUDA device; use bf16, int8 or fp32 on the CPU")
        self.model = model.to(device).eval()
        self.device = device
        self.precision = precision
        self.name = f"torch-{precision}"
        self.forward = torch.compile(self.model, dynamic=True) if compile else self.model

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def submit(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Pending:
        ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
        if self.device.type == "cuda":
            ids = ids.pin_memory().to(self.device, non_blocking=True)
            mask = mask.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode(), self._autocast():
            logits = self.forward(input_ids=ids, attention_mask=mask).logits
            probs = torch.softmax(logits.float(), dim=-1)
        return OnDevice(probs) if self.device.type == "cuda" else Ready(probs.numpy())


class InferenceEngine:
    def __init__(self, backend: Backend, tokenizer: Tokenizer, *, input_prefix: str = "",
                 options: EngineOptions = EngineOptions()) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.prefix = input_prefix
        self.options = options
        self.pad_id = int(tokenizer.pad_token_id)

    # -- preprocess ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> Encoded:
        limit = self.options.max_length * CHARS_PER_TOKEN_CAP
        cut = [t if len(t) <= limit else t[:limit] for t in texts]
        ids = self.tokenizer([self.prefix + t for t in cut], add_special_tokens=True, truncation=True,
                             max_length=self.options.max_length)["input_ids"]
        # A row at the limit may have lost tokens: flagged, so the store records the truncation.
        truncated = [len(t) > limit or len(i) >= self.options.max_length for t, i in zip(texts, ids)]
        return Encoded(ids=ids, truncated=truncated)

    def plan(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Index batches, longest first, each within the token budget (at least one row each)."""
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        batches: list[np.ndarray] = []
        start = 0
        budget, cap = self.options.max_batch_tokens, self.options.max_batch_size
        while start < len(order):
            rows = max(1, min(cap, budget // max(1, self.options.width(lengths[order[start]]))))
            batches.append(order[start : start + rows])
            start += rows
        return batches

    def collate(self, ids: list[list[int]], index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = [ids[i] for i in index]
        width = self.options.width(max(len(r) for r in rows))
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            input_ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        return input_ids, mask

    # -- forward ------------------------------------------------------------------------------
    def forward_batches(self, encoded: Encoded) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices, probabilities) per batch; the next batch is collated while this one runs."""
        batches = self.plan([len(i) for i in encoded.ids])
        if not batches:
            return
        pending_index, pending = batches[0], self.backend.submit(*self.collate(encoded.ids, batches[0]))
        for index in batches[1:]:
            nxt = self.collate(encoded.ids, index)
            yield pending_index, pending.result()
            pending_index, pending = index, self.backend.submit(*nxt)
        yield pending_index, pending.result()

    # -- postprocess --------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, Encoded]:
        encoded = self.encode(texts) if texts else Encoded([], [])
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for index, probs in self.forward_batches(encoded):
            out[index] = probs
        return out, encoded
