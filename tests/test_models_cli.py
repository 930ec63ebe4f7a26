"""The ``monitor predict`` and ``monitor evaluate`` contracts (design.md), on the tiny model."""

from __future__ import annotations

import json

from monitor.cli import main
from tests.conftest import write_jsonl


def test_predict_contract(tiny_model_dir, tmp_path):
    rows = [{"id": "a", "text": "Acme shares plunge", "lang": "EN-us"}, {"text": "贵州茅台股价大跌"},
            {"id": 7, "text": "Die Aktie von Siemens steigt kräftig nach starken Zahlen", "extra": {"k": 1}}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert main(["predict", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                 "--model", str(tiny_model_dir)]) == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["text"] for o in out] == [r["text"] for r in rows]
    assert out[0]["id"] == "a" and out[2]["id"] == 7 and out[2]["extra"] == {"k": 1}
    assert [o["lang"] for o in out] == ["en", "zh", "de"]
    for o in out:
        assert o["label"] in {"negative", "neutral", "positive"}
        assert set(o["scores"]) == {"negative", "neutral", "positive"}
        assert abs(sum(o["scores"].values()) - 1) < 1e-5
        assert abs(o["score"] - (o["scores"]["positive"] - o["scores"]["negative"])) < 1e-6


def test_evaluate_json_per_language_and_binary_sets(tiny_model_dir, tmp_path, capsys):
    three = [{"text": f"t{i}", "lang": "en" if i % 2 else "fr", "label": ["negative", "neutral", "positive"][i % 3]}
             for i in range(12)]
    write_jsonl(tmp_path / "three.jsonl", three)
    assert main(["evaluate", "--data", str(tmp_path / "three.jsonl"), "--json", "--model", str(tiny_model_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["per_language"]) == {"en", "fr"}
    assert report["overall"]["n"] == 12 and report["overall"]["classes"] == ["negative", "neutral", "positive"]
    assert sum(map(sum, report["overall"]["confusion"])) == 12
    assert 0 <= report["overall"]["macro_f1"] <= 1 and report["binary"] is False

    binary = [{"text": f"b{i}", "lang": "zh", "label": "negative" if i % 2 else "positive"} for i in range(6)]
    write_jsonl(tmp_path / "binary.jsonl", binary)
    assert main(["evaluate", "--data", str(tmp_path / "binary.jsonl"), "--json", "--model", str(tiny_model_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["binary"] is True and report["overall"]["classes"] == ["negative", "positive"]


def test_evaluate_table_is_readable(tiny_model_dir, tmp_path, capsys):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "lang": "en", "label": "neutral"}])
    assert main(["evaluate", "--data", str(tmp_path / "d.jsonl"), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and "overall" in out
