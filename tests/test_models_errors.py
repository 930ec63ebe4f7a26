"""A broken model directory or bad input file is one clear line from the CLI, exit status 2."""

from __future__ import annotations

import json
import shutil

import pytest

from models.artifact import ModelDirError, read_manifest
from monitor.cli import main
from tests.conftest import write_jsonl


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_model_directory(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    code = main(["predict", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                 "--model", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err


def test_corrupt_manifest(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path / "m")
    (model / "model.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="model.json"):
        read_manifest(model)


def test_wrong_label_map(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path / "m")
    manifest = json.loads((model / "model.json").read_text())
    manifest["id2label"] = {"0": "bearish", "1": "neutral", "2": "bullish"}
    (model / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="label map"):
        read_manifest(model)


def test_missing_weights(tiny_model_dir, tmp_path):
    model = _copy(tiny_model_dir, tmp_path / "m")
    (model / "full" / "config.json").unlink()
    with pytest.raises(ModelDirError, match="full/config.json is missing"):
        read_manifest(model)


@pytest.mark.parametrize("precision", ["fp32", "int8"])  # int8 builds its ONNX file in a child process
def test_truncated_weights_file(tiny_model_dir, tmp_path, precision):
    from models import SentimentClassifier

    model = _copy(tiny_model_dir, tmp_path / "m")
    weights = model / "full" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelDirError, match="cannot load the weights") as caught:
        SentimentClassifier.load(model, device="cpu", precision=precision, cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value)


def test_predict_rejects_a_line_without_text(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n{"id": 3}\n')
    code = main(["predict", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                 "--model", str(tiny_model_dir)])
    assert code == 2
    assert "in.jsonl:2" in capsys.readouterr().err
