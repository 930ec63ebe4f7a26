"""The evaluation the model ships with: ``eval.json`` beside the weights, per data set and language.

``eval.json`` is written by the training experiment: ``{"model_version", "sets": {name: report}}``
where a report is what ``monitor evaluate --json`` prints (``overall``, ``per_language``...); a bare
report, or a mapping of set name to reports, is read too. Anything else is reported as unreadable
rather than half-shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from monitor.config import PROJECT_ROOT, Settings

EVAL_FILE = "eval.json"


def model_dir(settings: Settings) -> Path:
    return settings.scorer.model_path or PROJECT_ROOT / "models" / "default"


def _rows(name: str, report: dict) -> list[dict]:
    rows = [{"data set": name, "language": lang, "n": s["n"], "accuracy": s["accuracy"], "macro-F1": s["macro_f1"]}
            for lang, s in report["per_language"].items()]
    overall = report.get("overall")
    if overall:
        rows.append({"data set": name, "language": "overall", "n": overall["n"], "accuracy": overall["accuracy"],
                     "macro-F1": overall["macro_f1"]})
    return rows


def read_eval(directory: Path) -> tuple[pd.DataFrame | None, str]:
    """The evaluation table, and a line saying where it came from or why there is none."""
    path = directory / EVAL_FILE
    if not path.is_file():
        return None, f"no evaluation recorded ({path} does not exist)"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        sets = doc.get("sets", doc)
        reports = {"evaluation": doc} if "per_language" in doc else {k: v for k, v in sets.items()
                                                                      if isinstance(v, dict) and "per_language" in v}
        rows = [row for name, report in reports.items() for row in _rows(name, report)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{path} is not a readable evaluation ({type(exc).__name__}: {exc})"
    if not rows:
        return None, f"{path} holds no per-language evaluation"
    version = doc.get("model_version") if isinstance(doc, dict) else None
    return pd.DataFrame(rows), f"from {path}" + (f" (model {version})" if version else "")
