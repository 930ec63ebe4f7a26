"""The issue's "done when": the synthetic feed through the whole pipeline to a real SMTP server.

synthetic feed -> posts.raw (embedded broker) -> scorer with the shipped model -> store + posts.scored
-> aggregator (its consumer group on posts.scored) -> aggregates -> alert rules on the schedule's clock -> one grouped e-mail for a
multilingual negative burst, a resolved notice after it ends, nothing during steady traffic, and
the e-mail delayed by an SMTP outage delivered once the server is back.

Event time is compressed: the feed is 105 simulated minutes (45 steady, a 20-minute crisis in de, fr
and es for one ticker, then calm); the alert service then runs over that span minute by minute
(``service.tick(now)``, what the scheduler does live), with the SMTP server down for 35 simulated
minutes from the start of the burst.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("ingest.aggregate_consumer", reason="the aggregator consumer has not landed yet")

from alerts.outbox import outbox_rows  # noqa: E402
from ingest.aggregate_consumer import run_aggregator  # noqa: E402
from ingest.broker import EmbeddedBroker  # noqa: E402
from ingest.kafka_clients import make_producer  # noqa: E402
from ingest.produce import post_messages, produce  # noqa: E402
from ingest.scorer import ScorerOptions, run_scorer  # noqa: E402
from ingest.synthetic import Episode, FeedConfig, generate  # noqa: E402
from models.artifact import DEFAULT_MODEL_DIR, MANIFEST  # noqa: E402
from monitor.config import AggregatorSettings, Settings  # noqa: E402
from monitor.store.alert_tables import alert_events  # noqa: E402
from monitor.store.db import open_store  # noqa: E402
from tests.alert_helpers import MIN, Mailbox, make_service, run_clock  # noqa: E402
from tests.kafka_helpers import fresh_topics  # noqa: E402

pytestmark = pytest.mark.slow

# Three hours ago, on the hour: the whole span is in the past (the scorer clamps future timestamps).
T0 = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
BURST_START, BURST_END = T0 + 45 * MIN, T0 + 65 * MIN
SMTP_DOWN, SMTP_UP = T0 + 45 * MIN, T0 + 80 * MIN
BURST_LANGS = ["de", "fr", "es"]

RULES = """\
route:
  group_by: [ticker]
  group_wait: 3m
  group_interval: 45m
  repeat_interval: 12h
receivers:
  desk:
    email: [desk@example.com]
defaults:
  receivers: [desk]
  interval: 1m
  for: 5m
  keep_firing_for: 5m
rules:
  - name: ticker-negative-share
    kind: aggregate
    series: ticker_lang
    metric: share_negative
    above: 0.6
    window: 15m
    min_posts: 12
    severity: warning
  - name: ticker-negative-multilingual
    kind: languages
    metric: share_negative
    above: 0.5
    min_languages: 3
    window: 15m
    min_posts: 5
    severity: critical
"""


def feed() -> FeedConfig:
    return FeedConfig(seed=11, start=T0, duration_s=105 * 60, rate=0.2,
                      languages={"en": 1.0, "de": 1.0, "fr": 1.0, "es": 1.0}, tickers=["TSLA", "SIE.DE"],
                      episodes=[Episode(name="crisis-tesla", kind="crisis", offset_s=45 * 60, duration_s=20 * 60,
                                        tickers=["TSLA"], langs=BURST_LANGS, negative_share=0.9, volume_factor=3)])


@pytest.fixture(scope="module")
def model():
    if not (DEFAULT_MODEL_DIR / MANIFEST).is_file():
        pytest.skip(f"the shipped model is not in {DEFAULT_MODEL_DIR} yet")
    from models import SentimentClassifier

    return SentimentClassifier.load(device="cpu")


def test_burst_through_the_whole_pipeline_gives_one_grouped_email_and_one_resolved_notice(model, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with EmbeddedBroker() as broker:
        kafka = fresh_topics(broker.bootstrap)
        producer = make_producer(kafka)
        report = produce(producer, kafka.topics.raw, post_messages(generate(feed())), progress=False)
        producer.close()
        options = ScorerOptions.from_settings(Settings(kafka=kafka), max_idle_s=2.0, poll_timeout_ms=200,
                                              group_id=f"scorers.{kafka.topics.raw}")
        stats = run_scorer(kafka, engine, model, options)
        assert stats.scored == report.produced > 500 and stats.deadlettered == 0
        settings = Settings(kafka=kafka, aggregator=AggregatorSettings(group_id=f"aggregators.{kafka.topics.scored}"))
        aggregated = run_aggregator(kafka, engine, settings, max_idle_s=2.0)
        assert aggregated.consumed == stats.scored

    mailbox = Mailbox(tmp_path / "mail")
    try:
        service = make_service(engine, RULES, mailbox.port, tmp_path)
        run_clock(service, T0 + 15 * MIN, SMTP_DOWN - MIN)
        assert mailbox.messages() == []  # steady traffic: nothing
        mailbox.down()
        run_clock(service, SMTP_DOWN, SMTP_UP - MIN)
        assert mailbox.messages() == []  # the burst fired while the server was down
        mailbox.up()
        run_clock(service, SMTP_UP, T0 + 135 * MIN)
        messages = mailbox.messages()
    finally:
        mailbox.close()

    with engine.connect() as conn:
        fired = [r for r in conn.execute(alert_events.select().where(alert_events.c.state == "firing"))]
    assert fired and min(r.at for r in fired) >= BURST_START  # no alert during steady traffic
    assert {r.labels["ticker"] for r in fired} == {"TSLA"}

    assert [re.match(r"\[(\w+)", m["Subject"]).group(1) for m in messages] == ["FIRING", "RESOLVED"]
    firing, resolved = messages
    assert "TSLA" in firing["Subject"] and "critical" in firing["Subject"].lower()
    body = firing.get_body(preferencelist=("plain",)).get_content()
    # The multilingual alert is grouped in; the real model may find a further language negative too.
    langs = re.search(r"TSLA: negative share > 50% in \d languages \(([^)]*)\)", body)
    assert langs and set(BURST_LANGS) <= set(langs.group(1).split(", "))
    assert firing["Date"].datetime < SMTP_UP  # written during the outage, delivered after it
    [delayed] = [r for r in outbox_rows(engine) if r["kind"] == "firing"]
    assert delayed["status"] == "sent" and delayed["attempts"] > 1
    assert resolved["Subject"].startswith("[RESOLVED") and "TSLA" in resolved["Subject"]
