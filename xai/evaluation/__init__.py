"""Measured faithfulness of explanations: per-sample evaluation (--evaluate), variants of engine
settings (--variants), and the report that aggregates them (metrics.csv/json, report.md/html)."""
