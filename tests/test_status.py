"""``monitor status`` and the heartbeats behind it, with real processes, a real broker and a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import timedelta

from sqlalchemy import update

from alerts.notification import Message
from alerts.outbox import enqueue
from fault_helpers import MONITOR, MonitorProcess, metric, monitor_env, raw_posts, wait_for
from kafka_helpers import fresh_topics, produce
from monitor.health import Heartbeat, read_heartbeats
from monitor.schemas import utcnow
from monitor.store.alert_tables import notifications
from monitor.store.db import open_store


def status(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = subprocess.run([MONITOR, "status", "--json", "--timeout-s", "3", *args], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def find(report: dict, prefix: str) -> list[dict]:
    return [c for c in report["checks"] if c["what"].startswith(prefix)]


def test_a_heartbeat_says_running_then_stopped_and_a_new_process_clears_a_dead_ones_file(tmp_path):
    problem = {"problem": None, "consumed": 3}
    beat = Heartbeat(tmp_path, "scorer", lambda: problem, every_s=0.1).start()
    wait_for(lambda: read_heartbeats(tmp_path) and read_heartbeats(tmp_path)[0]["consumed"] == 3, "the first heartbeat")
    problem.update(problem="store unavailable")
    wait_for(lambda: read_heartbeats(tmp_path)[0]["problem"] == "store unavailable", "the problem in the heartbeat")
    beat.stop()
    (record,) = read_heartbeats(tmp_path)
    assert record["state"] == "stopped" and record["pid"] == os.getpid()
    ghost = tmp_path / "run" / "scorer-999999999.json"  # a process that died without a word
    ghost.write_text(json.dumps({**record, "pid": 999999999, "state": "running"}))
    Heartbeat(tmp_path, "scorer", lambda: {}, every_s=60).start()._stop.set()
    assert not ghost.exists()
    assert len(read_heartbeats(tmp_path)) == 1


def test_status_follows_a_scorer_from_healthy_to_killed(broker, tmp_path, tiny_model_dir):
    kafka = fresh_topics(broker.bootstrap)
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(db_url).dispose()
    env = monitor_env(kafka, db_url, tmp_path / "data", MONITOR_SCORER_MODEL_PATH=str(tiny_model_dir),
                      MONITOR_SCORER_GROUP_ID="scorers", MONITOR_AGGREGATOR_GROUP_ID="aggregators",
                      MONITOR_METRICS_PORT="0")
    scorer = MonitorProcess(["score", "--device", "cpu", "--batch-size", "20"], env)
    try:
        produce(kafka.bootstrap, kafka.topics.raw, raw_posts(0, 60), key_by_id=True)
        wait_for(lambda: any(b.get("consumed") == 60 for b in read_heartbeats(tmp_path / "data")),
                 "the scorer's heartbeat to count the posts", context=scorer.tail)
        code, report = status(env)
        (proc,) = find(report, "scorer pid")
        assert proc["level"] == "ok" and "scored 60" in proc["detail"] and "lag 0" in proc["detail"], report
        url = read_heartbeats(tmp_path / "data")[0]["metrics_url"]
        assert metric(url, "monitor_scorer_scored_total") == 60  # its endpoint, found through the heartbeat
        assert find(report, f"kafka {kafka.bootstrap}")[0]["level"] == "ok"
        assert find(report, "group scorers")[0]["detail"] == f"lag 0 on {kafka.topics.raw}"
        assert "newest post scored" in find(report, "store ")[0]["detail"]
        assert code == 0 and report["status"] == "ok", report

        scorer.proc.send_signal(signal.SIGKILL)
        scorer.proc.wait()
        produce(kafka.bootstrap, kafka.topics.raw, raw_posts(60, 40), key_by_id=True)
        code, report = status(env, "--max-lag", "10")
        assert code == 1 and report["status"] == "fail"
        assert "gone without stopping" in find(report, "scorer pid")[0]["detail"]
        lagging = find(report, "group scorers")[0]
        assert lagging["level"] == "warn" and lagging["detail"].startswith("lag 40 ")
    finally:
        scorer.kill()


def test_a_process_waiting_out_an_outage_is_failing(tmp_path):
    state = {"problem": "store unavailable: the batch is retried with back-off, nothing committed", "consumed": 5}
    beat = Heartbeat(tmp_path / "data", "scorer", lambda: state, every_s=60).start()
    try:
        env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path / "data"), "MONITOR_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
        code, report = status(env)
        assert code == 1
        assert "store unavailable" in find(report, "scorer pid")[0]["detail"]
        assert find(report, "kafka 127.0.0.1:1")[0]["level"] == "fail"
    finally:
        beat.stop()


def test_undelivered_notifications_and_an_unreachable_store_are_reported(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    now = utcnow()
    with engine.begin() as conn:
        enqueue(conn, [Message("firing", "email", "desk", "desk@example.com", "s", "b", dedup_key="a"),
                       Message("firing", "email", "desk", "desk@example.com", "s", "b", dedup_key="b")], now - timedelta(minutes=9))
        conn.execute(update(notifications).where(notifications.c.dedup_key == "a").values(
            status="failed", attempts=1, last_error="550 no such user"))
        conn.execute(update(notifications).where(notifications.c.dedup_key == "b").values(
            attempts=4, last_error="SMTP server 127.0.0.1:25 unreachable"))
    engine.dispose()
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path / "data"), "MONITOR_DATABASE_URL": url}
    code, report = status(env)
    assert code == 0 and report["status"] == "warn"  # warnings, nothing failing
    assert any("failed for good (550 no such user)" in c["detail"] for c in find(report, "outbox"))
    assert any("waiting since 9 min ago after 4 tries: SMTP server" in c["detail"] for c in find(report, "outbox")), report
    env["MONITOR_DATABASE_URL"] = "postgresql://monitor:pw-5150@127.0.0.1:1/monitor"
    code, report = status(env)
    assert code == 1 and find(report, "store postgresql://monitor:***@")[0]["level"] == "fail"
    assert "pw-5150" not in json.dumps(report)


def test_alerts_run_serves_metrics_and_a_heartbeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).dispose()
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path / "data"), "MONITOR_DATABASE_URL": url,
           "MONITOR_METRICS_PORT": "0", "MONITOR_ALERTS_TICK_S": "0.5"}
    alerts = MonitorProcess(["alerts", "run"], env)
    try:
        wait_for(lambda: any(b.get("role") == "alerts" for b in read_heartbeats(tmp_path / "data")),
                 "the alerts heartbeat", context=alerts.tail)
        metrics_url = read_heartbeats(tmp_path / "data")[0]["metrics_url"]
        wait_for(lambda: metric(metrics_url, "monitor_alerts_job_last_success_timestamp_seconds",
                                {"job": "delivery"}) is not None, "a delivery run counted", context=alerts.tail)
        code, report = status(env)
        assert find(report, "alerts pid")[0]["level"] == "ok", report
        alerts.proc.send_signal(signal.SIGTERM)
        alerts.proc.wait(timeout=60)
        time.sleep(0.1)
        code, report = status(env)
        assert "stopped cleanly" in find(report, "alerts pid")[0]["detail"]
    finally:
        alerts.kill()
