"""The on-disk form of a fine-tuned classifier, and turning it back into a ``torch`` model.

A model directory holds ``model.json`` (manifest: base encoder, version, label map, input prefix),
and either a LoRA adapter with its head (``adapter_config.json`` + ``adapter_model.safetensors``, small
enough to commit) or, for full fine-tuning, a plain checkpoint in ``full/``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from monitor.errors import UserError
from models.labels import LABELS, LabelMapError, check_label_map

MANIFEST = "model.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"


class ModelDirError(UserError, RuntimeError):
    """A model directory is missing, incomplete or corrupt; the message says which file and why."""


class Manifest(BaseModel):
    base: str
    format: Literal["lora", "full"]
    version: str
    input_prefix: str = ""
    max_length: int = 128
    id2label: dict[int, str] = dict(enumerate(LABELS))


def read_manifest(path: Path) -> Manifest:
    file = path / MANIFEST
    if not path.is_dir():
        raise ModelDirError(f"model directory {path} does not exist")
    if not file.is_file():
        raise ModelDirError(f"{path} is not a model directory: {MANIFEST} is missing")
    try:
        manifest = Manifest.model_validate_json(file.read_text(encoding="utf-8"))
        check_label_map(manifest.id2label)
    except ValidationError as exc:
        raise ModelDirError(f"{file}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    except LabelMapError as exc:
        raise ModelDirError(f"{file}: {exc}") from None
    needed = ["adapter_config.json", "adapter_model.safetensors"] if manifest.format == "lora" else ["full/config.json"]
    for name in needed:
        if not (path / name).is_file():
            raise ModelDirError(f"{path}: {name} is missing; re-train or re-copy the model directory")
    return manifest


def write_manifest(path: Path, manifest: Manifest) -> None:
    (path / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def store_half(file: Path) -> None:
    """Rewrite a safetensors file in fp16: adapters are committed with the code, and half precision
    halves them (the default model: 5.9 -> 3.0 MB); loading casts them back into the fp32 model."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
    save_file(tensors, str(file), metadata={"format": "pt"})


def content_version(path: Path, name: str) -> str:
    """A version string that changes whenever the weights change: ``name-<sha256 prefix>``."""
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.safetensors")) + sorted((path / "full").glob("*.safetensors")):
        digest.update(file.read_bytes())
    return f"{name}-{digest.hexdigest()[:10]}"


def tokenizer_dir(path: Path, manifest: Manifest, cache_dir: Path) -> Path:
    """Where the model's tokenizer (and, for LoRA, its base weights) live."""
    from models.encoders import resolve_base

    return resolve_base(manifest.base, cache_dir) if manifest.format == "lora" else path / "full"


def load_merged(path: Path, cache_dir: Path):
    """``(manifest, merged fp32 model, tokenizer directory)`` of a model directory."""
    manifest = read_manifest(path)
    base_dir = tokenizer_dir(path, manifest, cache_dir)
    return manifest, build_model(path, manifest, base_dir), base_dir


def build_model(path: Path, manifest: Manifest, base_dir: Path):
    """Merged ``XLMRobertaForSequenceClassification`` (LoRA folded in: no adapter cost at inference)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    import warnings

    hf_logging.set_verbosity_error()  # the head is "newly initialised" before the adapter lands on it
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)  # peft vs transformers 5
    labels = {i: l for i, l in manifest.id2label.items()}
    try:
        if manifest.format == "full":
            return AutoModelForSequenceClassification.from_pretrained(str(path / "full"), dtype=torch.float32)
        from peft import PeftModel

        model = AutoModelForSequenceClassification.from_pretrained(
            str(base_dir), num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()},
            dtype=torch.float32,
        )
        return PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    except Exception as exc:  # safetensors, peft and torch each raise their own types for a damaged file
        raise ModelDirError(f"{path}: cannot load the weights ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
