"""The leaderboard domain: games, windows, boards, validation, run tokens, stats, rebuilds and
the ingestion of a batch, as plain functions over a Redis client (no Flask, no Celery)."""
