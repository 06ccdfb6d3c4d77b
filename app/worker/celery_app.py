"""Celery wired the way Flask's own Celery pattern does it, plus a worker heartbeat."""

from __future__ import annotations

import logging
import os

import redis
from celery import Celery, Task, bootsteps
from celery.signals import worker_process_init
from flask import Flask

from app.worker import graceful, redis_transport
from app.worker.status import HEARTBEAT_EVERY, forget_heartbeat, record_heartbeat

log = logging.getLogger(__name__)


def celery_init_app(app: Flask) -> Celery:
    """Build the Celery app from ``app.config["CELERY"]``; every task runs in an app context."""
    redis_transport.register()

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app: Celery = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.steps["worker"].add(_heartbeat_step(app))
    worker_process_init.connect(
        graceful.mark_pool_process, weak=False, dispatch_uid="hiscore.graceful"
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _heartbeat_step(app: Flask) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that keeps the worker's heartbeat key fresh in the data Redis."""

    class Heartbeat(bootsteps.StartStopStep):
        requires = ("celery.worker.components:Timer",)

        def __init__(self, worker, **kwargs):
            super().__init__(worker, **kwargs)
            self.timer_ref = None
            self.started_at = app.config["CLOCK"]()

        def start(self, worker):
            self.beat(worker)
            self.timer_ref = worker.timer.call_repeatedly(
                HEARTBEAT_EVERY, self.beat, (worker,), priority=10
            )

        def stop(self, worker):
            if self.timer_ref is not None:
                self.timer_ref.cancel()
            try:
                forget_heartbeat(app.extensions["hiscore.redis"], worker.hostname)
            except redis.RedisError:
                pass

        def beat(self, worker):
            info = {
                "hostname": worker.hostname,
                "pid": os.getpid(),
                "concurrency": worker.concurrency,
                "started_at": self.started_at,
                "seen_at": app.config["CLOCK"](),
            }
            try:
                record_heartbeat(app.extensions["hiscore.redis"], worker.hostname, info)
            except redis.RedisError as exc:
                log.warning("could not record the worker heartbeat: %s", exc)

    return Heartbeat
