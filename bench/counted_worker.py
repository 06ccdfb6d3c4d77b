"""``python -m bench.counted_worker <celery arguments>``: ``celery <arguments>`` as the Procfile
runs it, which also counts the round trips each of its processes makes to the data Redis.

redis-py sends a single command and reads its reply in ``Redis._send_command_parse_response``,
and a pipeline or transaction in ``Pipeline._execute_pipeline`` / ``_execute_transaction``: one
call, one round trip (a retry after a dropped connection is one more, as it is on the wire).
Those three are wrapped to count each round trip under a signature: the commands it carried,
scripts named by their file in ``app/lua/`` rather than their digest. Only round trips that
touch a key of hiscore's (``hs:``) are counted, heartbeats apart; the broker's are kombu's
business and go through other paths too. Each process (the pool's children are forked, so they
inherit the wrapping) rewrites ``$HISCORE_BENCH_COUNTS/<pid>.json`` with its counts every
:data:`FLUSH_EVERY_S` seconds while they change, for the benchmark to read from outside, with
the seconds each kind took from the send to the last reply read: the time a process waits on
Redis (Redis's own work, its queue, and redis-py's packing and parsing).

The wrapping costs a few microseconds a round trip, against milliseconds of work in a batch.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import redis.client

from app.storage import keys
from app.storage.scripts import sha

#: Where each process writes its counts (the environment's ``HISCORE_BENCH_COUNTS``).
COUNTS_DIR_VARIABLE = "HISCORE_BENCH_COUNTS"
FLUSH_EVERY_S = 0.2

_PREFIX = f"{keys.PREFIX}:"
_HEARTBEAT = keys.worker_key("")


def _script_names() -> dict[str, str]:
    """Digest -> script name, for every script of ``app/lua/`` as the app sends it (those that
    need a library are sent with it; a digest of the bare text is harmless if unused)."""
    names: dict[str, str] = {}
    folder = resources.files("app").joinpath("lua")
    for entry in folder.iterdir():
        name = entry.name.removesuffix(".lua")
        if not entry.name.endswith(".lua") or name.endswith("_lib"):
            continue
        names[sha(name)] = name
        for library in ("board_lib", "rate_limit_lib"):
            names[sha(name, library)] = name
    return names


_SCRIPTS = _script_names()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def signature(commands: Iterable[Sequence[Any]]) -> tuple[str, bool, int, int] | None:
    """What one round trip carried: its distinct command names in order (``EVALSHA`` as the
    script's name), whether it touched a heartbeat only, the entries it acknowledged
    (``XACK``'s ids) and on how many streams (its ``XACK`` commands); None if it touched no key
    of hiscore's."""
    names: list[str] = []
    ours = heartbeat = False
    acked = streams = 0
    for args in commands:
        if not args:
            continue
        name = _text(args[0]).upper()
        if name == "EVALSHA" and len(args) > 1:
            name = _SCRIPTS.get(_text(args[1]), "EVALSHA")
        elif name == "XACK":
            acked += max(0, len(args) - 3)  # XACK key group id...
            streams += 1
        if name not in names:
            names.append(name)
        if not ours:
            for arg in args[1:]:
                if isinstance(arg, bytes):
                    arg = arg[: len(_HEARTBEAT)].decode(errors="replace")
                if isinstance(arg, str) and arg.startswith(_PREFIX):
                    ours = True
                    heartbeat = arg.startswith(_HEARTBEAT)
                    break
    if not ours:
        return None
    return " ".join(names), heartbeat, acked, streams


class Counts:
    """This process's round trips by signature, written out now and then by a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = 0
        self.lock = threading.Lock()
        self.trips: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.acked = self.streams = self.heartbeats = 0
        self._changed = False
        # A lock held by this process's writer thread when the pool forked would stay held in
        # the child, whose writer thread does not exist: each child starts afresh.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0

    def add(self, commands: Iterable[Sequence[Any]], seconds: float = 0.0) -> None:
        """Count one round trip, which took ``seconds``."""
        seen = signature(commands)
        if seen is None:
            return
        what, heartbeat, acked, streams = seen
        with self.lock:
            if os.getpid() != self.pid:  # the first round trip of this (forked) process
                self._start()
            if heartbeat:
                self.heartbeats += 1
            else:
                self.trips[what] = self.trips.get(what, 0) + 1
                self.seconds[what] = self.seconds.get(what, 0.0) + seconds
                self.acked += acked
                self.streams += streams
            self._changed = True

    def _start(self) -> None:
        self.pid = os.getpid()
        self.trips, self.seconds = {}, {}
        self.acked, self.streams, self.heartbeats = 0, 0, 0
        threading.Thread(target=self._flush_forever, daemon=True).start()

    def _flush_forever(self) -> None:
        pid = self.pid
        while pid == os.getpid():
            time.sleep(FLUSH_EVERY_S)
            with self.lock:
                if not self._changed:
                    continue
                self._changed = False
                document = {
                    "trips": dict(self.trips),
                    "seconds": dict(self.seconds),
                    "acked": self.acked,
                    "streams": self.streams,
                    "heartbeats": self.heartbeats,
                }
            path = self.directory / f"{pid}.json"
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(document))
            os.replace(temporary, path)


def install(counts: Counts) -> None:
    """Wrap redis-py's three senders so that each round trip is counted."""
    single = redis.client.Redis._send_command_parse_response
    pipelined = redis.client.Pipeline._execute_pipeline
    transaction = redis.client.Pipeline._execute_transaction

    def send_single(self: Any, conn: Any, command_name: Any, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return single(self, conn, command_name, *args, **options)
        finally:
            counts.add((args,), time.perf_counter() - started)

    def send_pipeline(self: Any, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        started = time.perf_counter()
        try:
            return pipelined(self, connection, commands, raise_on_error)
        finally:
            counts.add((command for command, _ in commands), time.perf_counter() - started)

    def send_transaction(self: Any, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        started = time.perf_counter()
        try:
            return transaction(self, connection, commands, raise_on_error)
        finally:
            counts.add((command for command, _ in commands), time.perf_counter() - started)

    redis.client.Redis._send_command_parse_response = send_single  # type: ignore[method-assign]
    redis.client.Pipeline._execute_pipeline = send_pipeline  # type: ignore[method-assign]
    redis.client.Pipeline._execute_transaction = send_transaction  # type: ignore[method-assign]


def read_counts(directory: Path) -> dict[str, Any]:
    """The counts every process has written to ``directory`` so far, summed."""
    trips: dict[str, int] = {}
    seconds: dict[str, float] = {}
    acked = streams = heartbeats = 0
    for path in directory.glob("*.json"):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced as it was read: the next read has it
        for what, n in document["trips"].items():
            trips[what] = trips.get(what, 0) + n
        for what, took in document["seconds"].items():
            seconds[what] = seconds.get(what, 0.0) + took
        acked += document["acked"]
        streams += document["streams"]
        heartbeats += document["heartbeats"]
    return {
        "trips": trips,
        "seconds": seconds,
        "acked": acked,
        "streams": streams,
        "heartbeats": heartbeats,
    }


def counts_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What was counted between two :func:`read_counts`."""
    trips = {
        what: n - before["trips"].get(what, 0)
        for what, n in after["trips"].items()
        if n != before["trips"].get(what, 0)
    }
    seconds = {
        what: took - before["seconds"].get(what, 0.0)
        for what, took in after["seconds"].items()
        if what in trips
    }
    return {
        "trips": dict(sorted(trips.items(), key=lambda item: -item[1])),
        "seconds": seconds,
        "acked": after["acked"] - before["acked"],
        "streams": after["streams"] - before["streams"],
        "heartbeats": after["heartbeats"] - before["heartbeats"],
    }


def main() -> None:
    """Install the counting, then run Celery's command line with this one's arguments."""
    install(Counts(Path(os.environ[COUNTS_DIR_VARIABLE])))
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
