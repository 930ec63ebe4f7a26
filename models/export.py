"""Export the classifier as a plain Hugging Face checkpoint (and optionally ONNX).

The adapter is merged into the base, so any server that loads ``AutoTokenizer`` +
``AutoModelForSequenceClassification`` serves it. E5 expects inputs prefixed with ``query: ``; the
prefix is recorded as ``input_prefix`` in ``config.json`` and in the checkpoint's README, because a
server that forgets it gets noticeably worse predictions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from models.artifact import DEFAULT_MODEL_DIR, load_merged
from models.encoders import save_tokenizer

_README = """# {version}

Multilingual financial sentiment classifier (negative / neutral / positive), exported by
`monitor export-model`. Base: `{base}`.

**Prefix every input with `{prefix}`** (recorded as `input_prefix` in `config.json`).

```python
from transformers import AutoTokenizer, AutoModelForSequenceClassification
tok = AutoTokenizer.from_pretrained("{path}")
model = AutoModelForSequenceClassification.from_pretrained("{path}")
batch = tok(["{prefix}Shares of Acme plunge after profit warning"], return_tensors="pt", truncation=True, max_length={max_length})
probs = model(**batch).logits.softmax(-1)  # columns: {labels}
```
"""


def export_checkpoint(out: Path, model_dir: Path | None, *, cache_dir: Path, onnx: bool = False) -> Path:
    from transformers import AutoTokenizer

    src = model_dir or DEFAULT_MODEL_DIR
    manifest, model, base_dir = load_merged(src, cache_dir)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    out.mkdir(parents=True, exist_ok=True)
    model.config.id2label = {i: l for i, l in manifest.id2label.items()}
    model.config.label2id = {l: i for i, l in manifest.id2label.items()}
    model.config.input_prefix = manifest.input_prefix
    model.config.model_version = manifest.version
    model.config.max_input_tokens = manifest.max_length
    model.save_pretrained(str(out))
    save_tokenizer(tokenizer, out)
    (out / "README.md").write_text(_README.format(
        version=manifest.version, base=manifest.base, prefix=manifest.input_prefix, path=out,
        max_length=manifest.max_length, labels=", ".join(manifest.id2label[i] for i in sorted(manifest.id2label))))
    card = src / "README.md"
    if card.is_file():
        shutil.copy(card, out / "MODEL_CARD.md")
    if onnx:
        export_onnx(model, out / "model.onnx")
    (out / "export.json").write_text(json.dumps({"model_version": manifest.version, "onnx": onnx}) + "\n")
    return out


def export_onnx(model, path: Path) -> None:
    """Dynamic batch and sequence axes; logits out (softmax is the caller's, as in transformers)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore", module=r"(torch\.onnx|transformers)\..*")  # tracer notes on shapes we keep dynamic
    dummy = {"input_ids": torch.ones((2, 8), dtype=torch.long), "attention_mask": torch.ones((2, 8), dtype=torch.long)}
    with torch.inference_mode():
        torch.onnx.export(
            model, (dummy["input_ids"], dummy["attention_mask"]), str(path), dynamo=False,
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "logits": {0: "batch"}},
            opset_version=17,
        )
