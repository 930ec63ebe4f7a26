"""Throughput of the inference engine against the baseline a user would write.

The baseline is ``transformers.pipeline("text-classification")`` on the exported checkpoint with
``batch_size=32`` (inputs prefixed as the export's README says). Engine variants and the baseline
run in the same process on the same texts, alternating, for several rounds; medians are reported,
so a noisy neighbour on the machine skews all variants alike.
"""

from __future__ import annotations

import copy
import dataclasses
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from models.classifier import SentimentClassifier
from models.engine import (Backend, InferenceEngine, TorchBackend, bf16_word_embeddings, pad_multiple_for,
                           wants_bf16_table)

# Dense bf16 tensor-core peaks (TFLOP/s) of cards we may meet; unknown cards report no ratio.
GPU_BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


class VariantResult(BaseModel):
    name: str
    posts_per_s: float
    tokens_per_s: float
    rounds_s: list[float]
    tflops: float | None = None
    gpu_busy_fraction: float | None = None


class BenchReport(BaseModel):
    device: str
    texts: int
    tokens: int
    rounds: int
    threads: int
    variants: list[VariantResult]
    speedup_vs_pipeline: dict[str, float]
    peak_rss_mb: float
    gpu_peak_memory_mb: float | None = None
    gpu_bf16_peak_tflops: float | None = None
    max_abs_prob_diff_vs_fp32: dict[str, float]


def encoder_flops(config, batches: Sequence[tuple[int, int]]) -> float:
    """Forward FLOPs of the transformer layers for padded (rows, width) batches (2 per multiply-add)."""
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * 2 * (4 * h * h + 2 * h * ffn)
    total = 0.0
    for rows, width in batches:
        total += rows * width * per_token + rows * layers * 2 * 2 * width * width * h
    return total


def _time(fn: Callable[[], object], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def gpu_busy_fraction(fn: Callable[[], object]) -> float:
    """Share of one run's wall time during which CUDA kernels ran (from the profiler's kernel times)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    kernel_us = sum(e.device_time_total for e in prof.key_averages() if e.device_type.name == "CUDA")
    return min(1.0, kernel_us / 1e6 / wall)


def _batch_shapes(engine: InferenceEngine, texts: Sequence[str]) -> list[tuple[int, int]]:
    enc = engine.encode(texts)
    lengths = [len(i) for i in enc.ids]
    # Useful work only: the padding to width steps of 8 is not counted (the busy fraction shows it).
    return [(len(b), max(lengths[i] for i in b)) for b in engine.plan(lengths)]


def random_model_dir(name: str, dims: dict[str, int], cache_dir: Path, tokenizer_dir: Path) -> Path:
    """A full-format classifier with random weights of shape ``dims``, ``tokenizer_dir``'s tokenizer and
    the shipped model's input prefix and length, built once into ``cache_dir``: speed depends only on
    shapes, and no XLM-R-base weights can be fetched here."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from models.artifact import DEFAULT_MODEL_DIR, Manifest, read_manifest, write_manifest
    from models.labels import LABEL2ID, LABELS

    shape = "-".join(f"{dims[k]}" for k in sorted(dims))
    out = cache_dir / f"random-{name}-{shape}"
    if (out / "model.json").is_file():
        return out
    shipped = read_manifest(DEFAULT_MODEL_DIR)
    config = XLMRobertaConfig(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1, num_labels=3,
                              id2label=dict(enumerate(LABELS)), label2id=LABEL2ID, **dims)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        XLMRobertaForSequenceClassification(config).save_pretrained(str(out / "full"))
    for item in ("tokenizer.json", "tokenizer_config.json"):
        (out / "full" / item).write_bytes((tokenizer_dir / item).read_bytes())
    write_manifest(out, Manifest(base=f"random:{name}", format="full", version=f"random-{name}-{shape}",
                                 max_length=shipped.max_length, input_prefix=shipped.input_prefix))  # last: marks it complete
    return out


def _backend(clf: SentimentClassifier, precision: str, model_dir: Path | None, cache_dir: Path) -> Backend:
    if precision == "int8":
        from models.artifact import DEFAULT_MODEL_DIR
        from models.onnx_backend import INT8_FILE, OnnxBackend, onnx_int8_dir

        return OnnxBackend(onnx_int8_dir(model_dir or DEFAULT_MODEL_DIR, clf.manifest, cache_dir) / INT8_FILE)
    torch_model = clf.engine.backend.model  # shared fp32 weights, but bf16 on a CPU gets what the scorer runs
    if wants_bf16_table(precision, clf.device.type):
        torch_model = bf16_word_embeddings(copy.deepcopy(torch_model))
    return TorchBackend(torch_model, clf.device, precision)


def run_bench(clf: SentimentClassifier, texts: Sequence[str], export_dir: Path, *, model_dir: Path | None,
              cache_dir: Path, rounds: int = 3, precisions: Sequence[str] = ("fp32", "bf16", "int8"),
              pipeline_batch_size: int = 32, progress: Callable[[str], None] = lambda _: None) -> BenchReport:
    """``clf`` must be loaded in fp32 (torch); the other variants share or derive from its weights."""
    from transformers import pipeline

    device = clf.device
    cuda = device.type == "cuda"
    engines: dict[str, InferenceEngine] = {}
    for precision in precisions:
        if (precision == "int8" and cuda) or (precision == "fp16" and not cuda):
            continue
        options = dataclasses.replace(clf.engine.options, pad_multiple=pad_multiple_for(precision))
        engines[f"engine-{precision}"] = InferenceEngine(_backend(clf, precision, model_dir, cache_dir),
                                                         clf.engine.tokenizer, input_prefix=clf.engine.prefix,
                                                         options=options)
    pipe = pipeline("text-classification", model=str(export_dir), tokenizer=str(export_dir), device=device,
                    top_k=None, dtype=torch.float32)
    prefixed = [clf.manifest.input_prefix + t for t in texts]

    def run_pipeline():
        return pipe(prefixed, batch_size=pipeline_batch_size, truncation=True, max_length=clf.manifest.max_length)

    tokens = sum(len(i) for i in clf.engine.encode(texts).ids)
    walls: dict[str, list[float]] = {name: [] for name in [*engines, "pipeline-fp32-bs32"]}
    run_pipeline()  # warm-up: first calls allocate and pick kernels
    for e in engines.values():
        e.predict_proba(texts[: min(64, len(texts))])
    for r in range(rounds):
        for name, e in engines.items():
            walls[name].append(_time(lambda e=e: e.predict_proba(texts), cuda))
            progress(f"round {r + 1}/{rounds} {name}: {len(texts) / walls[name][-1]:.1f} posts/s")
        walls["pipeline-fp32-bs32"].append(_time(run_pipeline, cuda))
        progress(f"round {r + 1}/{rounds} pipeline: {len(texts) / walls['pipeline-fp32-bs32'][-1]:.1f} posts/s")

    reference = engines["engine-fp32"].predict_proba(texts)[0] if "engine-fp32" in engines else None
    diffs = {}
    if reference is not None:
        for name, e in engines.items():
            diffs[name] = float(np.abs(e.predict_proba(texts)[0] - reference).max())
    peak_name = next((k for k in GPU_BF16_PEAK_TFLOPS if cuda and k in torch.cuda.get_device_name(device)), None)
    results = []
    for name, w in walls.items():
        med = statistics.median(w)
        tflops = busy = None
        if cuda and name.startswith("engine"):
            tflops = round(encoder_flops(clf.engine.backend.model.config, _batch_shapes(engines[name], texts)) / med / 1e12, 2)
            busy = round(gpu_busy_fraction(lambda e=engines[name]: e.predict_proba(texts)), 3)
        results.append(VariantResult(name=name, posts_per_s=round(len(texts) / med, 2),
                                     tokens_per_s=round(tokens / med, 1), rounds_s=[round(x, 3) for x in w],
                                     tflops=tflops, gpu_busy_fraction=busy))
    base_rate = next(v.posts_per_s for v in results if v.name.startswith("pipeline"))
    return BenchReport(
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""),
        texts=len(texts), tokens=tokens, rounds=rounds, threads=torch.get_num_threads(), variants=results,
        speedup_vs_pipeline={v.name: round(v.posts_per_s / base_rate, 2) for v in results if v.name.startswith("engine")},
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        gpu_peak_memory_mb=round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None,
        gpu_bf16_peak_tflops=GPU_BF16_PEAK_TFLOPS.get(peak_name) if peak_name else None,
        max_abs_prob_diff_vs_fp32=diffs,
    )
