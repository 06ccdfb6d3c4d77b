"""Stopping a worker without cutting a drain short.

A supervisor stops a worker with SIGTERM, and honcho, systemd's default kill mode and a dyno
send it to every process, pool processes included. A pool process in the middle of a drain
would die with its batch half settled: nothing would be lost (its entries stay pending and are
claimed again), but every one of them would wait for the claim. So while a pool process drains,
SIGTERM only asks the drain to stop after its batch; the task then returns, and the worker's
main process, in its warm shutdown, closes the pool. An idle pool process, and any other pool
(solo, threads, where the main process runs the task and waits for it anyway), keeps Celery's
own handling. SIGKILL still stops anything.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_stop = threading.Event()
_in_pool_process = False


def stop_requested() -> bool:
    """Whether SIGTERM asked the current drain to stop after its batch."""
    return _stop.is_set()


def _on_sigterm(signum: int, frame: Any) -> None:
    _stop.set()


@contextmanager
def draining() -> Iterator[None]:
    """Defer SIGTERM to the end of the current batch for the work inside (in a pool process)."""
    if not _in_pool_process or threading.current_thread() is not threading.main_thread():
        yield
        return
    _stop.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def mark_pool_process(**_: Any) -> None:
    """Note that this process is a prefork pool process (a ``worker_process_init`` receiver)."""
    global _in_pool_process
    _in_pool_process = True
