"""The worker: the Celery app, its tasks, beat's scheduler and a graceful stop."""
