"""Cross-lingual fine-tuning: ``loss = L_main + sum_i lambda_i * L_i``.

Every example's cross-entropy is multiplied by its language's weight (1 for the main languages,
``lambda_i`` for the others) and by its class weight, then averaged over the batch; in expectation
that is the weighted sum of per-language losses, each scaled by the language's share of the
(capped) training mix. Caps per source and per language set the shares; lambdas set the pull.

Training is resumable: every evaluation writes ``.checkpoint/state.pt`` (trainable weights,
optimiser, scheduler, step, RNG, early-stopping state); a rerun of the same config continues there.
The best adapter by dev score (mean macro-F1 over the dev (source, language) groups) is what
lands in the output directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from models.artifact import Manifest, content_version, store_half, write_manifest
from models.data import Example, read_jsonl, select
from models.encoders import resolve_base, save_tokenizer
from models.engine import EngineOptions, InferenceEngine, TorchBackend
from models.evaluate import report
from models.labels import LABEL2ID, LABELS
from models.train_config import DataSource, TrainConfig, resolve_data_path

log = logging.getLogger(__name__)
CHECKPOINT = ".checkpoint"


@dataclass
class TrainResult:
    output_dir: Path
    best_dev: float
    steps: int
    dev_history: list[dict]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_sources(sources: list[DataSource], config_dir: Path, datasets_dir: Path, seed: int) -> list[Example]:
    rows: list[Example] = []
    for src in sources:
        path = resolve_data_path(src, config_dir, datasets_dir)
        rows.extend(select(read_jsonl(path), split=src.split, langs=src.langs, cap=src.cap, seed=seed) * src.repeat)
    return rows


def apply_language_caps(rows: list[Example], caps: dict[str, int], seed: int) -> list[Example]:
    by_lang: dict[str, list[Example]] = defaultdict(list)
    for e in rows:
        by_lang[e.lang].append(e)
    out: list[Example] = []
    for lang, group in sorted(by_lang.items()):
        out.extend(select(group, cap=caps.get(lang), seed=seed))
    return out


def class_weights(rows: list[Example], mode: str) -> torch.Tensor:
    if mode == "none":
        return torch.ones(len(LABELS))
    counts = Counter(e.label_id for e in rows)
    present = [c for c in range(len(LABELS)) if counts[c]]
    total = sum(counts.values())
    w = torch.ones(len(LABELS))
    for c in present:
        w[c] = total / (len(present) * counts[c])
    return w


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within pools of 50 batches by length, then shuffle the batches: little padding, random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _lora_targets(modules: list[str]) -> str:
    # A regex, so that the classifier head (trained in full, below) never also gets an adapter.
    return r"^(?!.*classifier).*\.(" + "|".join(modules) + r")$"


def build_trainable(config: TrainConfig, base_dir: Path):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID,
        hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
        classifier_dropout=config.dropout, dtype=torch.float32,
    )
    if config.finetune == "full":
        # 96M embedding rows would dominate optimiser time and memory for little gain.
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="SEQ_CLS", r=config.lora.r, lora_alpha=config.lora.alpha,
                      lora_dropout=config.lora.dropout, target_modules=_lora_targets(config.lora.target_modules),
                      modules_to_save=["classifier"])
    return get_peft_model(model, lora)


def _optimizer(model, config: TrainConfig, total_steps: int):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim == 1 or "LayerNorm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.optim.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.optim.lr)
    warmup = int(total_steps * config.optim.warmup_ratio)
    make = get_linear_schedule_with_warmup if config.optim.schedule == "linear" else get_cosine_schedule_with_warmup
    return opt, make(opt, warmup, total_steps)


def config_fingerprint(config: TrainConfig) -> str:
    """Stable across releases that add options: only what the config sets, not where it writes."""
    return hashlib.sha256(config.model_dump_json(exclude_defaults=True, exclude={"output_dir"}).encode()).hexdigest()[:16]


def already_trained(config: TrainConfig) -> bool:
    """The output directory holds a finished model trained from this very config."""
    saved = config.output_dir / "train_config.yaml"
    if not (config.output_dir / "model.json").is_file() or not saved.is_file():
        return False
    previous = TrainConfig.model_validate({**yaml.safe_load(saved.read_text()), "output_dir": str(config.output_dir)})
    return config_fingerprint(previous) == config_fingerprint(config)


class Trainer:
    def __init__(self, config: TrainConfig, config_dir: Path, datasets_dir: Path, cache_dir: Path,
                 progress: bool = True) -> None:
        from transformers import AutoTokenizer

        self.config = config
        self.progress = progress
        seed_everything(config.seed)
        train_rows = load_sources(config.train, config_dir, datasets_dir, config.seed)
        self.train_rows = apply_language_caps(train_rows, config.language_caps, config.seed)
        self.dev_rows = load_sources(config.dev, config_dir, datasets_dir, config.seed)
        if not self.train_rows:
            raise ValueError("the training mix is empty: check the train sources, splits and caps")
        self.base_dir = resolve_base(config.base, cache_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.base_dir))
        base_config = json.loads((self.base_dir / "config.json").read_text())
        self.prefix = base_config.get("input_prefix", "")
        self.model = build_trainable(config, self.base_dir)
        enc = self.tokenizer([self.prefix + e.text for e in self.train_rows], truncation=True,
                             max_length=config.max_length)
        self.ids: list[list[int]] = enc["input_ids"]
        self.labels = torch.tensor([e.label_id for e in self.train_rows])
        self.weights = torch.tensor([config.weight(e.lang) for e in self.train_rows], dtype=torch.float32)
        self.class_weights = class_weights(self.train_rows, config.class_weighting)
        steps_per_epoch = -(-len(self.train_rows) // config.batch_size)
        self.total_steps = config.max_steps or max(1, int(steps_per_epoch * config.epochs))
        self.steps_per_epoch = steps_per_epoch
        self.optimizer, self.scheduler = _optimizer(self.model, config, self.total_steps)

    def mix_summary(self) -> dict:
        counts = Counter(e.lang for e in self.train_rows)
        return {lang: {"rows": n, "lambda": self.config.weight(lang)} for lang, n in sorted(counts.items())}

    def _batch(self, index: list[int]) -> dict[str, torch.Tensor]:
        rows = [self.ids[i] for i in index]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            input_ids[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def _loss(self, index: list[int]) -> torch.Tensor:
        batch = self._batch(index)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            logits = self.model(**batch).logits
        ce = torch.nn.functional.cross_entropy(logits.float(), self.labels[index], weight=self.class_weights,
                                               reduction="none")
        return (ce * self.weights[index]).sum() / len(index)

    def evaluate_dev(self) -> tuple[float, dict]:
        self.model.eval()
        backend = TorchBackend(self.model, torch.device("cpu"), self.config.precision)
        engine = InferenceEngine(backend, self.tokenizer, input_prefix=self.prefix,
                                 options=EngineOptions(max_length=self.config.max_length))
        groups: dict[str, list[Example]] = defaultdict(list)
        for e in self.dev_rows:
            groups[e.source or "dev"].append(e)
        results = {}
        for source, rows in sorted(groups.items()):
            probs, _ = engine.predict_proba([e.text for e in rows])
            rep = report(rows, probs)
            for lang, s in rep.per_language.items():
                results[f"{source}/{lang}"] = round(s.macro_f1, 4)
        self.model.train()
        return (float(np.mean(list(results.values()))) if results else 0.0), results

    # -- checkpoints --------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def _save_checkpoint(self, out: Path, state: dict) -> None:
        ck = out / CHECKPOINT
        ck.mkdir(parents=True, exist_ok=True)
        tmp = ck / "state.pt.tmp"
        torch.save({**state, "weights": self._trainable_state(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                    "fingerprint": config_fingerprint(self.config)}, tmp)
        tmp.replace(ck / "state.pt")

    def _load_checkpoint(self, out: Path) -> dict | None:
        file = out / CHECKPOINT / "state.pt"
        if not file.is_file():
            return None
        state = torch.load(file, weights_only=False)
        if state.get("fingerprint") != config_fingerprint(self.config):
            log.warning("ignoring %s: it was made with a different config", file)
            return None
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["weights"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        return state

    def _save_best(self, out: Path) -> None:
        tmp = out / ".best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.config.finetune == "lora":
            self.model.save_pretrained(str(tmp))
            store_half(tmp / "adapter_model.safetensors")
            # peft records the local cache path of the base; the spec is what resolves on any machine.
            adapter_config = tmp / "adapter_config.json"
            data = json.loads(adapter_config.read_text())
            data["base_model_name_or_path"] = self.config.base
            adapter_config.write_text(json.dumps(data, indent=2))
        else:
            self.model.save_pretrained(str(tmp / "full"))
            save_tokenizer(self.tokenizer, tmp / "full")
            cfg_file = tmp / "full" / "config.json"
            cfg = json.loads(cfg_file.read_text())
            cfg["input_prefix"] = self.prefix
            cfg_file.write_text(json.dumps(cfg, indent=2))
        best = out / ".best"
        shutil.rmtree(best, ignore_errors=True)
        tmp.rename(best)

    # -- loop ---------------------------------------------------------------------------------
    def run(self, out: Path, resume: bool = True) -> TrainResult:
        from tqdm.auto import tqdm

        out.mkdir(parents=True, exist_ok=True)
        state = (self._load_checkpoint(out) if resume else None) or {}
        step = int(state.get("step", 0))
        best = float(state.get("best", -1.0))
        bad_evals = int(state.get("bad_evals", 0))
        history: list[dict] = list(state.get("history", []))
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=step, desc=f"train {self.config.name}", disable=not self.progress,
                   dynamic_ncols=True)
        running = None
        stop = False
        while step < self.total_steps and not stop:
            epoch = step // self.steps_per_epoch
            rng = random.Random(self.config.seed * 1000 + epoch)
            batches = length_bucketed_batches([len(i) for i in self.ids], self.config.batch_size, rng)
            for index in batches[step - epoch * self.steps_per_epoch :]:
                loss = self._loss(index)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                               self.config.optim.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", dev=f"{best:.4f}" if best >= 0 else "-")
                if step % self.config.eval_every == 0 or step == self.total_steps:
                    dev, per_group = self.evaluate_dev()
                    history.append({"step": step, "dev": round(dev, 4), "loss": round(running, 4), "groups": per_group})
                    bar.write(f"step {step}: dev mean macro-F1 {dev:.4f} {per_group}")
                    if dev > best:
                        best, bad_evals = dev, 0
                        self._save_best(out)
                    else:
                        bad_evals += 1
                    self._save_checkpoint(out, {"step": step, "best": best, "bad_evals": bad_evals, "history": history})
                    if bad_evals >= self.config.patience:
                        bar.write(f"early stop: no dev improvement in {bad_evals} evaluations")
                        stop = True
                if step >= self.total_steps or stop:
                    break
        bar.close()
        self._finalise(out, best, history)
        return TrainResult(out, best, step, history)

    def _finalise(self, out: Path, best: float, history: list[dict]) -> None:
        best_dir = out / ".best"
        if best_dir.is_dir():
            for item in best_dir.iterdir():
                target = out / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                item.replace(target)
            best_dir.rmdir()
        elif not (out / "model.json").is_file():  # a finished run resumed has nothing left to move
            raise RuntimeError("training ended without a single dev evaluation; lower eval_every")
        manifest = Manifest(base=self.config.base, format=self.config.finetune, version="pending",
                            input_prefix=self.prefix, max_length=self.config.max_length)
        manifest.version = content_version(out, self.config.name)
        write_manifest(out, manifest)
        (out / "train_config.yaml").write_text(yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
        (out / "training.json").write_text(json.dumps({"best_dev": best, "mix": self.mix_summary(),
                                                       "history": history}, indent=2) + "\n")


def train(config: TrainConfig, config_dir: Path, datasets_dir: Path, cache_dir: Path, *, resume: bool = True,
          progress: bool = True) -> TrainResult:
    trainer = Trainer(config, config_dir, datasets_dir, cache_dir, progress=progress)
    log.info("training mix: %s", trainer.mix_summary())
    return trainer.run(config.output_dir, resume=resume)
