"""Commands of ``manage.py`` (a Flask CLI group): ``up``, ``seed-demo``, ``rebuild``,
``prune``, ``stats``, ``migrate-storage`` and ``check``, beside Flask's ``run`` and ``shell``."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, with_appcontext

from app.extensions import get_clock, get_compaction, get_redis, get_registry, read_clock
from app.leaderboard.boards import Entry, apply_entries
from app.leaderboard.maintenance import families_of, run_operation
from app.leaderboard.migration import FamilyMigrated, IngestMoved, migrate_storage
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.operations import create_task
from app.storage.submissions import new_id

ROOT = Path(__file__).resolve().parent.parent


@click.command("up")
@click.option("--port", default=5000, show_default=True, help="Port of the web process.")
@with_appcontext
def up_command(port: int) -> None:
    """Start web, worker and beat (and, when REDIS_URL is unset, an embedded Redis)."""
    env = dict(os.environ)
    # The Procfile names gunicorn and celery: find the ones installed beside this Python.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    instance = Path(current_app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env.setdefault("HISCORE_INSTANCE_PATH", str(instance))
    env.setdefault("HOST", "127.0.0.1")  # `up` is for a laptop: loopback unless HOST says so
    server = None
    if not env.get("REDIS_URL"):
        server = EmbeddedRedis(instance / "redis", current_app.config["EMBEDDED_REDIS_PORT"])
        click.echo(f"starting the embedded Redis on port {server.port} (AOF in {server.data_dir})")
        server.start()
        env["REDIS_URL"] = server.url()
    click.echo(f"hiscore on http://127.0.0.1:{port}/ (Ctrl-C stops everything)")
    # The Procfile's `release` (a dyno's release phase) is a one-off: honcho would stop every
    # process when it exits, so it gets no process here.
    honcho_start = ["honcho", "start", "-f", str(ROOT / "Procfile"), "-p", str(port)]
    honcho = subprocess.Popen(
        [sys.executable, "-m", *honcho_start, "-c", "release=0"],
        env=env,
        cwd=ROOT,
    )

    def stop(*_: object) -> None:
        if honcho.poll() is None:
            honcho.terminate()

    # SIGTERM or SIGINT (Ctrl-C, which a terminal also sends to honcho) stops the processes
    # first, then the Redis they write to. A handler of our own also covers a SIGINT that a
    # non-interactive shell had set to be ignored.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        honcho.wait()
    finally:
        if server is not None:
            click.echo("stopping the embedded Redis")
            server.stop()


_ADJECTIVES = "swift quiet bold lucky clever brave sly calm eager fuzzy jolly keen".split()
_ANIMALS = "otter falcon lynx badger heron panda gecko koala moose raven tapir yak".split()


def _demo_guesses(rng: random.Random, size: int) -> int:
    # A person roughly halves the range each guess, with some slack and some luck.
    ideal = max(1, size.bit_length() - 1)
    return max(1, min(size, round(rng.gauss(ideal + 1, 1.6))))


def _demo_throws(
    rng: random.Random, people: list[tuple[str, str]], throws_each: int, days: int, now: int
) -> list[Entry]:
    """Paper plane throws by about half of ``people``: distances in tenths of a metre, each
    entry one throw (subscore 1) with the plane and the wind it flew in."""
    game = get_registry().get("throw")
    if game is None or game.keep != "sum":
        return []  # a games file replaced it with a game these throws do not fit
    variant = next(iter(game.variants))
    bounds = game.variants[variant]
    entries = []
    for player_id, name in people:
        if rng.random() < 0.5:
            continue
        for _ in range(rng.randint(1, throws_each)):
            metres = max(0.0, rng.gauss(55, 18))
            tenths = int(min(bounds.score_max, max(bounds.score_min, round(metres * 10))))
            plane = rng.choice(("dart", "glider", "stunt"))
            entries.append(
                Entry(
                    submission_id=new_id(),
                    game=game,
                    variant=variant,
                    player_id=player_id,
                    name=name,
                    score=tenths,
                    achieved_at=now - rng.randint(0, days * 86_400_000),
                    subscore=1,
                    metadata=f'{{"plane":"{plane}","wind":{rng.randint(-3, 3)}}}',
                )
            )
    return entries


@click.command("seed-demo")
@click.option("--players", default=300, show_default=True)
@click.option(
    "--games", "games_per_player", default=8, show_default=True, help="Games played by each player."
)
@click.option("--days", default=14, show_default=True, help="Spread the games over this many days.")
@click.option("--seed", default=None, type=int, help="Random seed, for a repeatable demo.")
@with_appcontext
def seed_demo_command(players: int, games_per_player: int, days: int, seed: int | None) -> None:
    """Fill the demo games' boards (guess, and the paper plane if it is served) with realistic
    fake players."""
    rng = random.Random(seed)
    game = get_registry().get("guess")
    if game is None:
        raise click.ClickException("the guess game is not configured")
    now = read_clock()
    entries = []
    people = []
    for _ in range(players):
        player_id = new_id()
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_ANIMALS)} {rng.randint(1, 99)}"
        people.append((player_id, name))
        for _ in range(games_per_player):
            variant = rng.choice(list(game.variants))
            entries.append(
                Entry(
                    submission_id=new_id(),
                    game=game,
                    variant=variant,
                    player_id=player_id,
                    name=name,
                    score=_demo_guesses(rng, int(variant)),
                    achieved_at=now - rng.randint(0, days * 86_400_000),
                )
            )
    guesses = len(entries)
    # Drawn after the guesses, so that a seed gives the guessing game the boards it always did.
    throws = _demo_throws(rng, people, games_per_player, days, now)
    entries.extend(throws)
    entries.sort(key=lambda e: e.achieved_at)
    client = get_redis()
    with click.progressbar(length=len(entries), label="seeding") as bar:
        for start in range(0, len(entries), 500):
            batch = entries[start : start + 500]
            apply_entries(client, batch, now)
            bar.update(len(batch))
    throwers = len({entry.player_id for entry in throws})
    click.echo(
        f"{guesses} games by {players} players; {len(throws)} paper plane throws by "
        f"{throwers} players"
    )


def _maintain(kind: str, game: str | None, variant: str | None) -> None:
    """Run a maintenance kind in this process with a progress bar, as an operator task."""
    registry = get_registry()
    if game is not None and registry.get(game) is None:
        raise click.BadParameter(f"no game called {game!r}", param_hint="--game")
    families = families_of(registry, game, variant)
    if not families:
        raise click.BadParameter("no such variant", param_hint="--variant")
    client = get_redis()
    task_id = new_id()
    create_task(client, task_id, kind, {"families": families, "from": "cli"}, read_clock())
    with click.progressbar(length=1, label=f"{kind}: {len(families)} variant log(s)") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        outcome = run_operation(
            client,
            registry,
            kind,
            families,
            task_id,
            get_clock(),
            True,
            progress,
            get_compaction(),
        )
    for family, result in outcome["families"].items():
        click.echo(f"{family}: {result}")
    for family in outcome["skipped"]:
        click.echo(f"{family}: skipped, another rebuild or prune holds it", err=True)


def _scope_options(command):
    command = click.option("--variant", help="Only this variant (needs --game).")(command)
    return click.option("--game", help="Only this game.")(command)


@click.command("rebuild")
@_scope_options
@with_appcontext
def rebuild_command(game: str | None, variant: str | None) -> None:
    """Rebuild boards from their logs (all, one game's, or one variant's)."""
    _maintain("rebuild", game, variant)


@click.command("prune")
@_scope_options
@with_appcontext
def prune_command(game: str | None, variant: str | None) -> None:
    """Delete log entries past each game's retention (rebuilding what they leave), then compact
    each log to what its readable boards need."""
    _maintain("prune", game, variant)


@click.command("stats")
@_scope_options
@with_appcontext
def stats_command(game: str | None, variant: str | None) -> None:
    """Recompute the stats of every readable board."""
    _maintain("stats", game, variant)


@click.command("migrate-storage")
@click.option("--dry-run", is_flag=True, help="Say what would be converted; write nothing.")
@with_appcontext
def migrate_storage_command(dry_run: bool) -> None:
    """Convert data of the layout with per-board rows hashes and one key per status record:
    rebuild each family's boards, count their entries, delete the rows hashes, compact the log,
    and move the status records into the generations' hashes; then move what the single ingest
    slot and a different partition count left into the ingest partitions. Safe to run again."""

    def said(family: str, report: FamilyMigrated) -> None:
        if report.state == "already":
            click.echo(f"{family}: nothing to convert")
        elif report.state == "skipped":
            click.echo(f"{family}: skipped, another rebuild or prune holds it", err=True)
        else:
            verb = "would rebuild" if dry_run else "rebuilt"
            line = (
                f"{family}: {verb} {report.boards} board(s) from {report.entries} log entries, "
                f"{'would delete' if dry_run else 'deleted'} {report.rows_deleted} rows hash(es)"
            )
            if report.compaction:
                c = report.compaction
                line += (
                    f"; log compacted: {c['kept']} kept, {c['dropped']} dropped "
                    f"({c['archived']} archived), {c['applied_dropped']} applied ids forgotten, "
                    f"{c['metadata_dropped']} metadata fields deleted"
                )
            click.echo(line)

    partitions = current_app.config["INGEST_PARTITIONS"]
    migrated = migrate_storage(
        get_redis(),
        get_registry(),
        read_clock(),
        get_compaction(),
        new_id(),
        partitions,
        dry_run,
        said,
    )
    families, records = migrated.families, migrated.records
    if not families:
        click.echo("no family has a log")
    click.echo(
        f"status records: {records.converted} {'to convert' if dry_run else 'converted'}, "
        f"{records.expired} past the idempotency window {'to delete' if dry_run else 'deleted'}, "
        f"{records.unreadable} unreadable kept"
    )
    click.echo(f"single ingest slot: {_moved_line(migrated.ingest, dry_run)}")
    click.echo(
        f"left by another HISCORE_INGEST_PARTITIONS (now {partitions}): "
        f"{_moved_line(migrated.partitions_left, dry_run)}"
    )
    kept = migrated.ingest.kept + migrated.partitions_left.kept
    for stream in kept:
        click.echo(f"{stream}: entries arrived while it was moved; run again", err=True)
    if kept or any(report.state == "skipped" for report in families.values()):
        raise SystemExit(1)


def _moved_line(report: IngestMoved, dry_run: bool) -> str:
    """What moving ingest keys into the partitions did (or would do), in a line."""
    if not report.anything:
        return "nothing to move"
    would = "would " if dry_run else ""
    return (
        f"{would}{'move' if dry_run else 'moved'} {report.entries} stream entries "
        f"({report.pending} pending) and {report.records} status records into their "
        f"partitions; {would}{'add' if dry_run else 'added'} {report.counts} count fields, "
        f"{would}{'append' if dry_run else 'appended'} {report.rejections} rejections and "
        f"{report.dead_letters} dead letters to partition 0's; "
        f"{would}{'delete' if dry_run else 'deleted'} {report.leases} drain lease(s)"
    )


@click.command("check")
def check_command() -> None:
    """Check the configuration, Redis, the broker and the games (exit status 1 on a FAIL)."""
    from app.checks import run_checks

    results = run_checks()
    for result in results:
        click.echo(str(result))
    if any(result.failed for result in results):
        raise SystemExit(1)


COMMANDS = (
    up_command,
    seed_demo_command,
    rebuild_command,
    prune_command,
    stats_command,
    migrate_storage_command,
    check_command,
)


def register_cli(app: Flask) -> None:
    """Add hiscore's commands to ``app.cli``."""
    for command in COMMANDS:
        app.cli.add_command(command)


def _create_app() -> Flask:
    from app import create_app

    try:
        return create_app()
    except RuntimeError as exc:  # a configuration the app refuses: one line says what to set
        hint = (
            " (on a laptop: HISCORE_CONFIG=development, or ./dev manage …)"
            if "HISCORE_CONFIG" not in os.environ
            else ""
        )
        raise NoAppException(f"{exc}{hint}") from None


class CommandGroup(FlaskGroup):
    """Flask's group, except that one of hiscore's commands in an app that will not start ends
    with the reason alone, not also "No such command"."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in {c.name for c in COMMANDS}:
            ctx.exit(2)  # Flask printed why the app could not be built
        return command


cli = CommandGroup(create_app=_create_app, help="Manage a hiscore deployment.")
# Also a command of the group itself, so that it runs (and says what is wrong) when the
# configuration is one the app refuses to start with.
cli.add_command(check_command)
