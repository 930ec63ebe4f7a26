"""The fast CPU path: the merged classifier exported to ONNX and quantised to int8 (dynamic).

Measured on 2 cores it is the fastest option we have (see README, performance), well ahead of
PyTorch fp32, bf16 autocast and PyTorch's own dynamic int8. Only the MatMul weights are quantised,
per output channel: quantising the embedding lookup as well cost 1.4 macro-F1 points on the UMSAB
test, this recipe 0.8; fusing attention with ORT's transformer optimiser made the int8 model slower.
The quantised file is built once per model version into the model cache, with its tokenizer beside
it, and reused by every process.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from models.artifact import Manifest, ModelDirError, load_merged
from models.engine import Ready
from monitor.errors import UserError

log = logging.getLogger(__name__)
INT8_FILE = "model-int8.onnx"
USER_ERROR_EXIT = 2  # the build child's status for a damaged model directory (its message on stderr)
RECIPE = "int8-matmul-perchannel"  # part of the cache key: a new recipe never reuses an old file


def onnx_int8_dir(model_dir: Path, manifest: Manifest, cache_dir: Path) -> Path:
    """``<cache>/onnx-<recipe>-<version>/`` holding ``model-int8.onnx`` and the tokenizer; built on first use.

    The build runs in a child process: export and quantisation peak at ~2.7 GB for the default model,
    and a long-lived scorer that did it itself would keep ~350 MB of that heap for good.
    """
    target = cache_dir / f"onnx-{RECIPE}-{manifest.version}"
    if not (target / INT8_FILE).is_file():
        log.info("building the int8 ONNX model for %s (once)", manifest.version)
        # A fresh interpreter, not multiprocessing: spawn would re-run the caller's main module.
        done = subprocess.run([sys.executable, "-m", "models.onnx_backend", *(str(p.resolve()) for p in (model_dir, cache_dir, target))],
                              capture_output=True, text=True, errors="replace", cwd=Path(__file__).resolve().parent.parent)
        lines = done.stderr.strip().splitlines()
        if done.returncode == USER_ERROR_EXIT and lines:
            raise ModelDirError(lines[-1])  # the child printed only the message
        if done.returncode != 0:
            log.error("int8 ONNX build output:\n%s", done.stderr)
            how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
            raise RuntimeError(f"building the int8 ONNX model of {model_dir} failed ({how}); its output is logged above")
    return target


def _build(model_dir: Path, cache_dir: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    from models.encoders import save_tokenizer
    from models.export import export_onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=cache_dir))
    try:
        _, model, base_dir = load_merged(model_dir, cache_dir)
        export_onnx(model.eval(), tmp / "model.onnx")
        save_tokenizer(AutoTokenizer.from_pretrained(str(base_dir)), tmp)
        quantize_dynamic(str(tmp / "model.onnx"), str(tmp / INT8_FILE), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], per_channel=True)
        (tmp / "model.onnx").unlink()
        try:
            tmp.rename(target)
        except OSError:  # another process built it first
            if not (target / INT8_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxBackend:
    name = "onnx-int8"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def submit(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Ready:
        (logits,) = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})
        return Ready(_softmax(logits.astype(np.float32)))


if __name__ == "__main__":
    try:
        _build(*map(Path, sys.argv[1:4]))
    except UserError as exc:
        print(exc, file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
