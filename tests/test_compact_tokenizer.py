"""The scorer's SentencePiece tokenizer gives the ids the training tokenizer gives, on every kind of post."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from transformers import AutoTokenizer

from models.compact_tokenizer import CompactTokenizer, convertible, load_inference_tokenizer

TRICKY = [
    "", " ", "Shares of Acme plunge 20% after a profit warning", "  lots   of\t\tspace\n\nhere ",
    "<s>", "a<s>b", "x </s> y", "<mask>", "<unk><pad>", "<<s>>", "<s", "price <3 now",
    "\u2581\u2581 metaspace marks typed by a user", "𓀀𓀁 unknown characters 𓀂", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ ﬁ",
    "zero\u200bwidth\u200djoin", "\x00nul\x01control\x7f", "\u3000ideographic\u00a0no-break",
    "贵州茅台股价大跌", "トヨタ株が急落", "ٱلْعَرَبِيَّة الأسهم", "शेयर बाजार गिरा", "emoji 🚀📉🤯", "$AAPL #earnings @user",
    "Die Aktie steigt um 5 % — Analysten überrascht", "word " * 200,
    # special tokens that only appear after normalisation: the training tokenizer's lattice matches them
    "＜s＞ hi", "a<\x01s>b", "<\x01mask>", "x <\x01/s> y", "＜unk＞", "<pad\x7f>",
    "\u32ff \U0001fbf0\U0001fbf9 \ua7f2 \U0001f16c",  # NFKC-mapped differently by Unicode versions
]


@pytest.fixture(scope="module")
def both(base_tokenizer_dir, tmp_path_factory):
    compact = load_inference_tokenizer(base_tokenizer_dir, tmp_path_factory.mktemp("cache"))
    assert isinstance(compact, CompactTokenizer)
    return compact, AutoTokenizer.from_pretrained(str(base_tokenizer_dir))


def encode(tokenizer, texts, max_length=96):
    return tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]


def test_same_ids_as_transformers_on_tricky_posts(both):
    compact, reference = both
    texts = ["query: " + t for t in TRICKY] + TRICKY
    for max_length in (8, 96, 512):
        assert encode(compact, texts, max_length) == encode(reference, texts, max_length)


def test_same_ids_on_every_shared_data_set_but_for_equal_score_ties(both, shared_data):
    compact, reference = both
    texts = ["query: " + json.loads(line)["text"] for f in sorted(shared_data.glob("*.jsonl"))
             for line in f.open(encoding="utf-8")]
    ours, theirs = encode(compact, texts), encode(reference, texts)
    differ = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    # float32 vs float64 lattice sums: equal-score orders of the same pieces may swap (module docstring)
    assert all(Counter(ours[i]) == Counter(theirs[i]) for i in differ)
    assert len(differ) <= len(texts) / 1000


def test_other_tokenizers_keep_transformers(base_tokenizer_dir, tmp_path):
    spec = json.loads((base_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert convertible(spec)
    spec["normalizer"] = {"type": "NFC"}
    assert not convertible(spec)
    other = tmp_path / "other"
    other.mkdir()
    for item in base_tokenizer_dir.iterdir():
        (other / item.name).write_bytes(item.read_bytes())
    (other / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tokenizer = load_inference_tokenizer(other, tmp_path / "cache")
    assert not isinstance(tokenizer, CompactTokenizer)
    assert not (tmp_path / "cache").exists()


def test_built_once_into_the_cache(base_tokenizer_dir, tmp_path):
    first = load_inference_tokenizer(base_tokenizer_dir, tmp_path)
    [built] = (tmp_path / "tokenizers").glob("*.model")
    stamp = built.stat().st_mtime_ns
    again = load_inference_tokenizer(base_tokenizer_dir, tmp_path)
    assert built.stat().st_mtime_ns == stamp
    assert encode(again, TRICKY) == encode(first, TRICKY)


def test_refuses_what_inference_never_asks_for(both):
    with pytest.raises(ValueError, match="inference only"):
        both[0](["a"], add_special_tokens=False, truncation=True, max_length=8)
    with pytest.raises(ValueError, match="no room"):
        both[0](["a"], max_length=1)
