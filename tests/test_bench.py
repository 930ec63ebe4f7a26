"""``monitor bench``: the engine and the pipeline baseline on the same texts, in one report."""

from __future__ import annotations

import json

from models import SentimentClassifier
from models.bench import random_model_dir
from monitor.cli import main


def test_bench_reports_engine_against_pipeline(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MONITOR_MODEL_CACHE", str(tmp_path / "cache"))
    code = main(["bench", "--model", str(tiny_model_dir), "--device", "cpu", "--texts", "40", "--rounds", "2",
                 "--precisions", "fp32,bf16,int8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [v["name"] for v in report["variants"]]
    assert names == ["engine-fp32", "engine-bf16", "engine-int8", "pipeline-fp32-bs32"]
    assert report["texts"] == 40 and report["tokens"] > 40 and report["rounds"] == 2
    assert all(len(v["rounds_s"]) == 2 and v["posts_per_s"] > 0 for v in report["variants"])
    assert set(report["speedup_vs_pipeline"]) == set(names) - {"pipeline-fp32-bs32"}
    diffs = report["max_abs_prob_diff_vs_fp32"]
    assert 0 < diffs["engine-int8"] < 1  # an approximation of fp32, measured on the same texts
    assert report["peak_rss_mb"] > 0 and report["gpu_bf16_peak_tflops"] is None


def test_random_encoder_of_a_given_shape_is_built_once(base_tokenizer_dir, tmp_path):
    dims = {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 96}
    path = random_model_dir("small", dims, tmp_path, base_tokenizer_dir)
    stamp = (path / "model.json").stat().st_mtime_ns
    assert random_model_dir("small", dims, tmp_path, base_tokenizer_dir) == path
    assert random_model_dir("other", {**dims, "num_hidden_layers": 2}, tmp_path, base_tokenizer_dir) != path
    assert (path / "model.json").stat().st_mtime_ns == stamp
    clf = SentimentClassifier.load(path, device="cpu", cache_dir=tmp_path)
    config = clf.engine.backend.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (48, 3, 96)
    assert clf.engine.prefix == "query: " and clf.engine.options.max_length == 96  # the shipped model's workload
