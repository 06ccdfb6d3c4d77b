"""Settings of the web process; gunicorn reads this file from the working directory."""

import os

from app.logs import gunicorn_logger_class

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
# Long-polls hold a request for up to 30 s: cooperative workers park them for the cost of a
# greenlet, so a hundred waiting players do not starve anyone else.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 1000
# gevent workers heartbeat while requests wait, so this only catches a stuck worker.
timeout = 60
graceful_timeout = 30
accesslog = "-"
# JSON lines under LOG_FORMAT=json (the default outside development), with the request id the
# app answered; otherwise gunicorn's text lines, which end with that id and the time taken.
logger_class = gunicorn_logger_class
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %({x-request-id}o)s'
)
# One control socket per home directory would be shared by every gunicorn on the machine.
control_socket_disable = True

# Every worker process writes its metric samples into this folder, so that /metrics, whichever
# worker answers it, reports them all (prometheus_client's multiprocess mode).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hiscore-metrics-")


def child_exit(server, worker):
    """Let a dead worker's live gauges go (its counters are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
