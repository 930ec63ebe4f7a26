"""The store: posts, aggregates, anomalies and alert state, on SQLite or PostgreSQL (SQLAlchemy Core)."""
