"""Storage: Redis key names, the ingest stream, submission records, operator tasks, the
long-poll's listener and the embedded redis-server."""
