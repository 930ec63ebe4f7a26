"""Notifiers: one per channel (e-mail, webhook, Kafka), each behind ``alerts.outbox.Notifier``."""
