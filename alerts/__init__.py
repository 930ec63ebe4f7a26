"""Alerting: rules on the aggregates and anomalies, alert state, and notifications analysts can trust.

The flow, one module per step (Alertmanager's design, with the rule evaluation of Prometheus):

* ``rules`` — the YAML rules file, validated, every error with its line;
* ``conditions`` (reading the store through ``queries``) — which series breach a rule at a time;
* ``state`` / ``evaluator`` / ``alert_store`` — pending -> firing -> resolved, persisted;
* ``dispatch`` — routing to receivers and grouping by labels (group_wait / group_interval);
* ``pipeline`` — inhibit -> silence (``silences``) -> dedup -> notify, small stages behind one interface;
* ``render`` / ``payloads`` / ``evidence`` / ``chart`` — the e-mail, webhook and Kafka bodies;
* ``outbox`` and ``notifiers`` — delivery with back-off until delivered;
* ``service`` / ``scheduler`` — the whole at a given time, and its live schedule; ``digest``,
  ``dryrun`` (``monitor alerts test-rule``), ``smtp_sink`` (the demo's local mail server).
"""
