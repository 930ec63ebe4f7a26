"""Model commands: ``train``, ``evaluate``, ``predict``, ``export-model``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitor.config import load_settings
from monitor.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune the classifier from a YAML config",
                       description="Fine-tune an XLM-R-family encoder (LoRA by default) on JSONL data in the shared "
                       "shape. Resumes from the output directory's checkpoint when the config is unchanged.")
    p.add_argument("--config", dest="train_config", required=True, type=Path, metavar="FILE.yaml",
                   help="training config (see configs/default-model.yaml)")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    p.add_argument("--output-dir", type=Path, help="override output_dir of the config")
    p.set_defaults(handler=_train)

    p = sub.add_parser("experiment", help="run the cross-lingual experiment (README / model card table)",
                       description="Train (or resume) each arm of the experiment config, fit frozen-encoder "
                       "baselines, evaluate all on UMSAB test (per language), Twitter Financial News dev and "
                       "Financial PhraseBank test, and write results.md/json and the model cards.")
    p.add_argument("--config", dest="experiment_config", type=Path, default=Path("configs/crosslingual.yaml"),
                   metavar="FILE.yaml", help="experiment config (default configs/crosslingual.yaml)")
    p.set_defaults(handler=_experiment)

    p = sub.add_parser("evaluate", help="accuracy and macro-F1 per language on labelled JSONL",
                       description="Score rows {text, lang, label} with a model; prints a table, or JSON with --json. "
                       "Sets labelled only negative/positive are scored over those two classes.")
    p.add_argument("--data", required=True, type=Path, nargs="+", metavar="FILE.jsonl")
    p.add_argument("--split", help="only rows whose split is this (e.g. test)")
    p.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _engine_args(p)
    p.set_defaults(handler=_evaluate)

    p = sub.add_parser("predict", help="score a JSONL file of texts",
                       description="Rows {id?, text, lang?} in; the same rows out with label, scores "
                       "{negative, neutral, positive}, score = p(positive) - p(negative), and lang.")
    p.add_argument("--input", required=True, type=Path, metavar="IN.jsonl", help="'-' reads stdin")
    p.add_argument("--output", required=True, type=Path, metavar="OUT.jsonl", help="'-' writes stdout")
    p.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    _engine_args(p)
    p.set_defaults(handler=_predict)

    p = sub.add_parser("export-model", help="write a plain Hugging Face checkpoint of the classifier",
                       description="Merge the adapter into the base and write a checkpoint that AutoTokenizer + "
                       "AutoModelForSequenceClassification load anywhere (id2label and input_prefix recorded).")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx for ONNX Runtime")
    p.set_defaults(handler=_export)


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if present)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"],
                   help="fp32 (exact), bf16/fp16 autocast, int8 dynamic quantisation (CPU); "
                   "default: the scorer's setting, else fp32 on CPU and bf16 on GPU")
    p.add_argument("--batch-tokens", type=int, help="token budget per batch (default 2048 on a CPU, 8192 on a GPU)")


def _load_classifier(args: argparse.Namespace):
    from models import SentimentClassifier

    settings = load_settings(args.config)
    return SentimentClassifier.load(args.model, device=args.device, precision=args.precision or settings.scorer.precision,
                                    max_batch_tokens=args.batch_tokens, cache_dir=settings.model_cache_dir)


def _train(args: argparse.Namespace) -> int:
    from models.train import train
    from models.train_config import load_train_config

    settings = load_settings(args.config)
    config = load_train_config(args.train_config)
    if args.output_dir:
        config.output_dir = args.output_dir.resolve()
    result = train(config, args.train_config.resolve().parent, settings.datasets_dir, settings.model_cache_dir,
                   resume=not args.no_resume)
    print(json.dumps({"output_dir": str(result.output_dir), "best_dev_macro_f1": result.best_dev,
                      "steps": result.steps}))
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from models.experiment import run_experiment

    settings = load_settings(args.config)
    results = run_experiment(args.experiment_config, settings.datasets_dir, settings.model_cache_dir,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.data import read_jsonl
    from models.evaluate import evaluate, format_table

    rows = [e for path in args.data for e in read_jsonl(path) if args.split is None or e.split == args.split]
    if not rows:
        raise UserError(f"no rows to evaluate in {', '.join(map(str, args.data))}" + (f" with split={args.split}" if args.split else ""))
    clf = _load_classifier(args)
    rep = evaluate(rows, clf.predict_proba)
    if args.json:
        print(json.dumps({"model_version": clf.version, **rep.model_dump()}, indent=2))
    else:
        print(format_table(rep, f"model {clf.version} on {len(rows)} rows"))
    return 0


def _read_predict_rows(path: Path) -> list[dict]:
    from pydantic import ValidationError

    from models.predict_io import PredictRow

    fh = sys.stdin if str(path) == "-" else None
    if fh is None and not path.is_file():
        raise UserError(f"{path}: no such input file")
    rows = []
    with (fh or path.open(encoding="utf-8")) as stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                rows.append(PredictRow.model_validate_json(line).model_dump(exclude_none=False) | json.loads(line))
            except (ValidationError, ValueError) as exc:
                msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise UserError(f"{path}:{lineno}: {msg}; each line must be a JSON object with a string 'text'") from None
    return rows


def _predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from models.predict_io import detect_missing_languages

    rows = _read_predict_rows(args.input)
    clf = _load_classifier(args)
    detect_missing_languages(rows)
    out = sys.stdout if str(args.output) == "-" else args.output.open("w", encoding="utf-8")
    chunk = 512
    with tqdm(total=len(rows), desc="predict", unit="post", disable=out is sys.stdout or not rows) as bar:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            for row, pred in zip(part, clf.predict([r["text"] for r in part])):
                row.update(label=pred.label, scores=pred.scores, score=pred.score, model_version=clf.version)
                if pred.truncated:
                    row["truncated"] = True
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            bar.update(len(part))
    if out is not sys.stdout:
        out.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    from models.export import export_checkpoint

    settings = load_settings(args.config)
    path = export_checkpoint(args.dir, args.model, cache_dir=settings.model_cache_dir, onnx=args.onnx)
    print(f"exported to {path}")
    return 0
