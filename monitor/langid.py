"""Offline language identification (lingua: its models ship inside the wheel).

Only posts that arrive without a language are detected; a declared language is kept. The result
carries the detector's confidence; below ``MIN_CONFIDENCE`` (emoji-only posts, cashtag lists, very
short texts) the language is ``und`` (undetermined, ISO 639-2), which every later stage accepts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

UNDETERMINED = "und"
MIN_CONFIDENCE = 0.25
SUPPORTED = ("en", "zh", "de", "fr", "es", "ja", "ar", "pt", "it", "hi", "ko", "ru", "nl", "sv", "pl", "tr")
_CODE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class Detected:
    lang: str
    confidence: float


def normalise_code(code: str | None) -> str | None:
    """``"EN-us"`` -> ``"en"``; anything that is not an ISO 639 code -> ``None`` (then detected)."""
    if not code:
        return None
    head = code.strip().lower().replace("_", "-").split("-")[0]
    return head if _CODE.match(head) else None


@lru_cache(maxsize=1)
def _detector():
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in SUPPORTED]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect(texts: Sequence[str]) -> list[Detected]:
    if not texts:
        return []
    results = _detector().compute_language_confidence_values_in_parallel(list(texts))
    out = []
    for values in results:
        top = values[0] if values else None
        if top is None or top.value < MIN_CONFIDENCE:
            out.append(Detected(UNDETERMINED, float(top.value) if top else 0.0))
        else:
            out.append(Detected(top.language.iso_code_639_1.name.lower(), round(float(top.value), 4)))
    return out
