"""The batching engine: token-budget batches give the same answers as one-by-one, in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import SentimentClassifier
from models.engine import EngineOptions, InferenceEngine

MIXED = [
    "short",
    "Shares of Acme plunge 20% after a profit warning, analysts cut targets across the board " * 3,
    "",
    "   ",
    "🚀🚀🚀",
    "贵州茅台股价大跌 but $AAPL rallies — mixed scripts ٱلْعَرَبِيَّة",
    "x" * 100_000,
    "Die Aktie steigt.",
] * 3


@pytest.fixture(scope="module")
def clf(tiny_model_dir) -> SentimentClassifier:
    return SentimentClassifier.load(tiny_model_dir, device="cpu")


@pytest.mark.parametrize("budget", [64, 300, 8192])
def test_batched_equals_one_by_one_in_input_order(clf, budget):
    engine = InferenceEngine(clf.engine.backend, clf.engine.tokenizer, input_prefix=clf.engine.prefix,
                             options=EngineOptions(max_length=64, max_batch_tokens=budget))
    batched, _ = engine.predict_proba(MIXED)
    single = np.vstack([engine.predict_proba([t])[0] for t in MIXED])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert np.allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_batches_respect_the_token_budget(clf):
    engine = InferenceEngine(clf.engine.backend, clf.engine.tokenizer, options=EngineOptions(max_batch_tokens=256))
    lengths = [5, 60, 12, 128, 7, 7, 33]
    batches = engine.plan(lengths)
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = engine.options.width(max(lengths[i] for i in batch))
        assert len(batch) == 1 or len(batch) * width <= 256


def test_batch_widths_come_in_steps_of_eight_up_to_max_length(clf):
    assert clf.engine.options.pad_multiple == 8  # torch backends
    engine = InferenceEngine(clf.engine.backend, clf.engine.tokenizer, options=EngineOptions(max_length=60, pad_multiple=8))
    ids = [[5] * n for n in (1, 8, 9, 17, 59, 60)]
    widths = [engine.collate(ids, [i])[0].shape[1] for i in range(len(ids))]
    assert widths == [8, 8, 16, 24, 60, 60]


def test_empty_input_gives_empty_output(clf):
    assert clf.predict([]) == []
    probs, encoded = clf.engine.predict_proba([])
    assert probs.shape == (0, 3) and encoded.ids == []


def test_every_kind_of_text_gets_a_prediction_and_long_ones_are_flagged(clf):
    preds = clf.predict(MIXED[:8])
    assert [p.label in {"negative", "neutral", "positive"} for p in preds] == [True] * 8
    assert preds[6].truncated is True  # 100 KB text: cut, and the cut reported
    assert preds[0].truncated is False


def test_langs_must_match_texts(clf):
    with pytest.raises(ValueError, match="2 texts but 1 langs"):
        clf.predict(["a", "b"], langs=["en"])



def test_int8_onnx_path_follows_fp32_in_input_order_and_is_built_once(clf, tiny_model_dir, tmp_path):
    fast = SentimentClassifier.load(tiny_model_dir, device="cpu", precision="int8", cache_dir=tmp_path)
    exact, quick = clf.predict_proba(MIXED), fast.predict_proba(MIXED)
    assert quick.shape == exact.shape and np.allclose(quick.sum(axis=1), 1.0, atol=1e-5)
    # int8 is an approximation (README: max 0.38 on the real model): close on average, same answers mostly;
    # the tiny model's rows differ by up to 0.9, so a row out of order would break both.
    assert np.abs(quick - exact).mean() < 0.05
    assert (quick.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.9
    [built] = tmp_path.glob("onnx-*/model-int8.onnx")
    stamp = built.stat().st_mtime_ns
    again = SentimentClassifier.load(tiny_model_dir, device="cpu", precision="int8", cache_dir=tmp_path)
    assert built.stat().st_mtime_ns == stamp  # reused by the next process, not rebuilt
    np.testing.assert_allclose(again.predict_proba(MIXED), quick, atol=1e-6)


def test_cpu_batches_default_to_the_cache_sized_budget(clf):
    assert clf.engine.options.max_batch_tokens == 2048


def test_bf16_on_cpu_keeps_the_embedding_table_in_bf16_and_follows_fp32(clf, tiny_model_dir):
    half = SentimentClassifier.load(tiny_model_dir, device="cpu", precision="bf16")
    model = half.engine.backend.model
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert {p.dtype for n, p in model.named_parameters() if "word_embeddings" not in n} == {torch.float32}
    exact, approx = clf.predict_proba(MIXED), half.predict_proba(MIXED)
    assert np.allclose(approx.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(approx - exact).mean() < 0.05
    assert (approx.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.9
