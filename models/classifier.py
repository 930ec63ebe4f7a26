"""``SentimentClassifier``: the one entry point the scorer, the CLI and users call.

>>> clf = SentimentClassifier.load()                         # doctest: +SKIP
>>> [p.label for p in clf.predict(["Shares of Acme plunge 20% after profit warning"])]  # doctest: +SKIP
['negative']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.artifact import DEFAULT_MODEL_DIR, Manifest, build_model, read_manifest, tokenizer_dir
from models.engine import (Backend, EngineOptions, InferenceEngine, Tokenizer, TorchBackend,
                           bf16_word_embeddings, default_batch_tokens, pad_multiple_for, wants_bf16_table)
from models.labels import LABELS, NEGATIVE, POSITIVE


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]
    score: float  # p(positive) - p(negative), in [-1, 1]
    truncated: bool = False


def prediction_from_probs(probs, truncated: bool = False) -> Prediction:
    values = [float(x) for x in probs]
    return Prediction(
        label=LABELS[max(range(len(values)), key=values.__getitem__)],
        scores=dict(zip(LABELS, values)),
        score=values[POSITIVE] - values[NEGATIVE],
        truncated=truncated,
    )


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but no CUDA GPU is visible; use device='cpu'")
    return dev


def _default_cache_dir() -> Path:
    from monitor.config import get_settings

    return get_settings().model_cache_dir


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 autocast then runs at about 2.2x fp32 for a negligible accuracy cost."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_threads(threads: int | None) -> int:
    """The caller's choice, else OMP_NUM_THREADS, else one intra-op thread per core we may run on."""
    if threads:
        return threads
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, len(os.sched_getaffinity(0)))


PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class SentimentClassifier:
    def __init__(self, backend: Backend, tokenizer: Tokenizer, manifest: Manifest, device: torch.device,
                 options: EngineOptions) -> None:
        self.manifest = manifest
        self.device = device
        self.engine = InferenceEngine(backend, tokenizer, input_prefix=manifest.input_prefix, options=options)

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device | None = None, *,
             precision: str | None = None, max_batch_tokens: int | None = None, cache_dir: Path | None = None,
             compile: bool = False, threads: int | None = None) -> "SentimentClassifier":
        """Load a model directory (default: the shipped model) on ``device`` (default: a GPU if any).

        ``precision``: ``fp32`` (exact; the CPU default, and what the evaluation table uses),
        ``bf16``/``fp16`` autocast (the GPU default is bf16), or ``int8`` (ONNX Runtime, dynamic
        int8: the fastest CPU path, built once per model version into the model cache).
        ``max_batch_tokens``: default 2,048 on a CPU, 8,192 on a GPU (``models.engine``).
        """
        from models.compact_tokenizer import load_inference_tokenizer

        model_dir = Path(path) if path is not None else DEFAULT_MODEL_DIR
        manifest = read_manifest(model_dir)
        dev = resolve_device(device)
        precision = precision or ("bf16" if dev.type == "cuda" else "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if dev.type == "cpu":
            torch.set_num_threads(cpu_threads(threads))
        cache = cache_dir or _default_cache_dir()
        backend: Backend
        if precision == "int8":
            if dev.type != "cpu":
                raise ValueError("int8 is the ONNX Runtime CPU path; use bf16 or fp16 on a GPU")
            from models.onnx_backend import INT8_FILE, OnnxBackend, onnx_int8_dir

            tok_dir = onnx_int8_dir(model_dir, manifest, cache)
            backend = OnnxBackend(tok_dir / INT8_FILE, threads=cpu_threads(threads))
        else:
            tok_dir = tokenizer_dir(model_dir, manifest, cache)
            model = build_model(model_dir, manifest, tok_dir)
            if wants_bf16_table(precision, dev.type):
                bf16_word_embeddings(model)
            backend = TorchBackend(model, dev, precision, compile=compile)
        tokenizer = load_inference_tokenizer(tok_dir, cache, threads=cpu_threads(threads))
        options = EngineOptions(max_length=manifest.max_length,
                                max_batch_tokens=max_batch_tokens or default_batch_tokens(dev.type),
                                pad_multiple=pad_multiple_for(precision))
        return cls(backend, tokenizer, manifest, dev, options)

    def predict(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[Prediction]:
        """One prediction per text, in input order.

        ``langs`` is accepted for API symmetry with language-aware models; this model is
        cross-lingual and needs no language hint.
        """
        if langs is not None and len(langs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(langs)} langs")
        probs, encoded = self.engine.predict_proba(list(texts))
        return [prediction_from_probs(p, t) for p, t in zip(probs, encoded.truncated)]

    def predict_proba(self, texts: Sequence[str]):
        return self.engine.predict_proba(list(texts))[0]
