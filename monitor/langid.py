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


@lru_cache(maxsize=2)
def _detector(compact: bool):
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in SUPPORTED]
    builder = LanguageDetectorBuilder.from_languages(*langs)
    return (builder.with_low_accuracy_mode() if compact else builder).build()


def detect(texts: Sequence[str], *, compact: bool = False) -> list[Detected]:
    """``compact``: lingua's trigram-only models, 20 MB of memory instead of 340 MB with all 16 languages
    loaded, for a few points of accuracy on short posts (UMSAB test tweets: 82.0% instead of 85.4% right)."""
    if not texts:
        return []
    results = _detector(compact).compute_language_confidence_values_in_parallel(list(texts))
    out = []
    for values in results:
        top = values[0] if values else None
        if top is None or top.value < MIN_CONFIDENCE:
            out.append(Detected(UNDETERMINED, float(top.value) if top else 0.0))
        else:
            out.append(Detected(top.language.iso_code_639_1.name.lower(), round(float(top.value), 4)))
    return out
