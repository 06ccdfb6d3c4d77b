"""Every script and transaction keeps to one Redis Cluster slot: the keys each one touches
share a hash tag, whatever the game, variant, period or partition."""

from __future__ import annotations

from redis.crc import key_slot

from app.storage import keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_board_familys_keys_share_one_slot():
    for game, variant in (("guess", "10"), ("guess-claimed", "1000"), ("a:b", "{x}")):
        family = [
            keys.log_key(game, variant),
            keys.log_copy_key(game, variant),
            keys.applied_key(game, variant),
            keys.banned_key(game, variant),
            keys.run_key(game, variant, "run-id"),
            keys.run_state_key(game, variant, "run-id"),
            keys.lock_key(game, variant),
            keys.players_key(game, variant),
            keys.build_key(keys.players_key(game, variant)),
            keys.legacy_rows_key(game, variant, "daily", "2026-12-01"),
        ]
        for window, period in (("alltime", "all"), ("daily", "2026-12-01"), ("weekly", "2026-W49")):
            board = [
                keys.ranking_key(game, variant, window, period),
                keys.meta_key(game, variant, window, period),
                keys.stats_key(game, variant, window, period),
            ]
            family += [*board, *(keys.build_key(key) for key in board)]
        assert len({slot(key) for key in family}) == 1, (game, variant)


def test_the_request_slot_holds_the_key_generations_and_every_rate_limit_counter():
    request = [
        keys.KEY_GENERATIONS,
        keys.rate_limit_key("127.0.0.1", "global", "600/1/minute"),
        keys.rate_limit_key("player:abc", "api.scores.submit_score", "20/1/minute"),
        keys.rate_limit_key("::1", "api.admin", "60/1/minute"),
    ]
    assert len({slot(key) for key in request}) == 1


def test_each_ingest_partition_is_one_slot_and_partitions_spread_over_slots():
    slots = set()
    for partition in range(64):
        own = [
            keys.ingest_stream(partition),
            keys.drain_flag(partition),
            keys.dead_letters(partition),
            keys.partition_submissions_key(partition, 7, 1023),
            keys.verdict_counts(partition),
            keys.latency_histogram(partition),
            keys.rejected_stream(partition),
        ]
        assert len({slot(key) for key in own}) == 1, partition
        slots.add(slot(own[0]))
    assert len(slots) == 64
    # Three masters each serve a third of the slots: eight partitions land on more than one.
    thirds = {s * 3 // 16384 for s in (slot(keys.ingest_stream(p)) for p in range(8))}
    assert len(thirds) > 1
