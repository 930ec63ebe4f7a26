"""Training end to end on a tiny fixture, then evaluation, prediction, export and resume.

A tiny random XLM-R encoder with the real 250k-piece tokenizer stands in for the base, so the whole
lifecycle (LoRA and full fine-tuning, checkpoints, manifest, export round trip) runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models import SentimentClassifier
from models.artifact import read_manifest
from models.train import train
from models.train_config import load_train_config
from monitor.cli import main
from tests.conftest import write_jsonl

TEXTS = {
    "positive": ["Acme shares soar after record profit", "Los beneficios de Acme se disparan", "Acme 利润大增"],
    "negative": ["Acme shares plunge on fraud probe", "Die Aktie von Acme bricht ein", "Acme 股价暴跌"],
    "neutral": ["Acme will report results on Tuesday", "Acme publie ses résultats mardi", "Acme 周二发布财报"],
}
LANGS = ["en", "es", "zh"]


def _rows(split: str, repeat: int) -> list[dict]:
    rows = []
    for label, texts in TEXTS.items():
        for i, text in enumerate(texts * repeat):
            rows.append({"id": f"{split}-{label}-{i}", "source": "fixture", "lang": LANGS[i % 3], "text": text,
                         "label": label, "split": split})
    return rows


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "datasets"
    d.mkdir()
    write_jsonl(d / "fixture.jsonl", _rows("train", 4) + _rows("dev", 1))
    return d


def _config(tmp_path: Path, base: Path, finetune: str, **extra) -> Path:
    cfg = {
        "name": f"tiny-{finetune}", "base": str(base), "output_dir": str(tmp_path / f"out-{finetune}"),
        "max_length": 32, "train": [{"path": "fixture.jsonl", "split": "train"}],
        "dev": [{"path": "fixture.jsonl", "split": "dev"}], "main_languages": ["en"],
        "language_weights": {"zh": 0.5}, "finetune": finetune, "epochs": 2, "batch_size": 8, "eval_every": 3,
        "optim": {"lr": 5e-3}, "precision": "fp32", "patience": 10, **extra,
    }
    path = tmp_path / f"{finetune}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_train_writes_a_loadable_model_directory(tmp_path, tiny_base_dir, data_dir, finetune):
    config_path = _config(tmp_path, tiny_base_dir, finetune)
    config = load_train_config(config_path)
    result = train(config, config_path.parent, data_dir, tmp_path / "cache", progress=False)

    out = result.output_dir
    manifest = read_manifest(out)
    assert manifest.format == finetune and manifest.input_prefix == "query: "
    assert manifest.version.startswith(f"tiny-{finetune}-")
    assert (out / "train_config.yaml").is_file()
    history = json.loads((out / "training.json").read_text())
    assert history["mix"]["zh"]["lambda"] == 0.5 and history["mix"]["en"]["lambda"] == 1.0
    # 36 rows / 8 per batch = 5 steps per epoch, 2 epochs: evaluations every 3 steps and at the end.
    assert [h["step"] for h in history["history"]] == [3, 6, 9, 10]
    if finetune == "lora":
        assert (out / "adapter_model.safetensors").stat().st_size < 10 * 2**20
        from safetensors.torch import load_file

        assert {str(v.dtype) for v in load_file(str(out / "adapter_model.safetensors")).values()} == {"torch.float16"}

    clf = SentimentClassifier.load(out, device="cpu", cache_dir=tmp_path / "cache")
    preds = clf.predict(["Acme shares soar", ""])
    assert [set(p.scores) for p in preds] == [{"negative", "neutral", "positive"}] * 2
    assert all(abs(sum(p.scores.values()) - 1) < 1e-5 for p in preds)
    assert all(abs(p.score - (p.scores["positive"] - p.scores["negative"])) < 1e-6 for p in preds)


def test_training_resumes_from_its_checkpoint(tmp_path, tiny_base_dir, data_dir):
    config_path = _config(tmp_path, tiny_base_dir, "lora", max_steps=6)
    config = load_train_config(config_path)
    first = train(config, config_path.parent, data_dir, tmp_path / "cache", progress=False)
    assert first.steps == 6

    longer = config.model_copy(update={"max_steps": 9})
    # A different config must not pick up the old checkpoint...
    fresh = train(longer, config_path.parent, data_dir, tmp_path / "cache", progress=False)
    assert [h["step"] for h in fresh.dev_history] == [3, 6, 9]
    # ...while the same config continues where it stopped, keeping its history.
    again = train(longer, config_path.parent, data_dir, tmp_path / "cache", progress=False)
    assert again.steps == 9 and [h["step"] for h in again.dev_history] == [3, 6, 9]


def test_export_round_trip_matches_predict(tmp_path, tiny_base_dir, data_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config_path = _config(tmp_path, tiny_base_dir, "lora")
    config = load_train_config(config_path)
    out = train(config, config_path.parent, data_dir, tmp_path / "cache", progress=False).output_dir
    export = tmp_path / "export"
    assert main(["export-model", str(export), "--model", str(out)]) == 0

    hf_config = json.loads((export / "config.json").read_text())
    assert hf_config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert hf_config["input_prefix"] == "query: "
    tok = AutoTokenizer.from_pretrained(str(export))
    model = AutoModelForSequenceClassification.from_pretrained(str(export)).eval()
    texts = ["Acme shares plunge on fraud probe", "Acme 利润大增", "ＡＣＭＥ　results\non Tuesday"]
    batch = tok([hf_config["input_prefix"] + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        exported = model(**batch).logits.softmax(-1).numpy()
    ours = SentimentClassifier.load(out, device="cpu", cache_dir=tmp_path / "cache").predict_proba(texts)
    np.testing.assert_allclose(exported, ours, atol=1e-4)


def test_bad_training_config_is_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("output_dir: x\ntrain: []\ndev: []\nepochs: -1\nlearning_rate: 3\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any("epochs" in line and "greater than 0" in line for line in err)
    assert any("learning_rate" in line and "Extra inputs" in line for line in err)
