"""Player keys: rotated by the player, revoked by an operator, and old keys still honoured."""

import pytest
from itsdangerous import Signer

from app.leaderboard.players import player_key, player_of, revoke_keys
from app.storage import keys
from tests.cases import GOOD
from tests.conftest import keyed

PLAYER = "r" * 22
SESSIONS = "/api/v1/games/guess-claimed/sessions"
SCORES = "/api/v1/games/guess-claimed/scores"


def revoke(redis_client, player_id=PLAYER):
    """End the player's keys as an operator does; return a key of the next generation."""
    return player_key("testing-secret", player_id, revoke_keys(redis_client, player_id))


def submit(client, **identity):
    return client.post(SCORES, json={**GOOD, **identity})


def test_a_key_issued_before_generations_is_still_the_players_key(client, queued):
    # Keys issued before keys could be rotated sign the player id alone.
    old = Signer("testing-secret", salt="hiscore.player").sign(PLAYER).decode()
    assert player_key("testing-secret", PLAYER) == old
    assert submit(client, player_key=old).status_code == 202
    assert [p["player_id"] for p in queued()] == [PLAYER]


def test_after_revocation_the_old_key_is_refused_in_the_body(app, redis_client, queued):
    revoke(redis_client)
    fresh = app.test_client()
    resp = submit(fresh, **keyed(PLAYER))
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"
    assert "player_key" in resp.get_json()["errors"]
    assert queued() == []
    assert redis_client.keys(keys.PARTITION_SUBMISSIONS_PATTERN) == []  # no record either
    assert fresh.post(SESSIONS, json=keyed(PLAYER)).status_code == 403


def test_after_revocation_the_old_cookie_is_refused_and_cleared(app, redis_client, queued):
    player = app.test_client()
    player.set_cookie("hiscore_player", keyed(PLAYER)["player_key"])
    assert submit(player).get_json()["player_id"] == PLAYER
    queued()
    revoke(redis_client)
    resp = submit(player)
    assert resp.status_code == 403
    assert queued() == []
    assert "hiscore_player=;" in resp.headers["Set-Cookie"]  # the refusal drops the cookie
    player.set_cookie("hiscore_player", keyed(PLAYER)["player_key"])
    assert player.post(SESSIONS, json={}).status_code == 403
    # That refusal dropped it too, so the page's next session is a new player.
    again = player.post(SESSIONS, json={})
    assert again.status_code == 201
    assert again.get_json()["player_id"] != PLAYER


def test_a_key_of_the_next_generation_works_after_revocation(app, redis_client, queued):
    new = revoke(redis_client)
    assert new != keyed(PLAYER)["player_key"] and player_of("testing-secret", new) == PLAYER
    resp = submit(app.test_client(), player_key=new)
    assert resp.status_code == 202 and resp.get_json()["player_key"] == new
    # A second revocation ends that key too.
    revoke(redis_client)
    assert submit(app.test_client(), player_key=new).status_code == 403


def test_rotation_replaces_the_key_and_ends_the_old_one(app, client, queued):
    old = keyed(PLAYER)["player_key"]
    resp = client.post(SESSIONS, json={"player_key": old, "rotate": True})
    assert resp.status_code == 201
    new = resp.get_json()["player_key"]
    assert new != old and player_of("testing-secret", new) == PLAYER
    assert new in resp.headers["Set-Cookie"]
    assert submit(app.test_client(), player_key=old).status_code == 403
    assert submit(app.test_client(), player_key=new).status_code == 202
    # Without rotate, a session confirms the key it was given.
    same = client.post(SESSIONS, json={"player_key": new}).get_json()["player_key"]
    assert same == new


def test_a_session_without_rotate_keeps_the_old_format_key(client):
    resp = client.post(SESSIONS, json=keyed(PLAYER))
    assert resp.get_json()["player_key"] == keyed(PLAYER)["player_key"]


AUTH = {"Authorization": "Bearer testing-operator-token"}


def test_an_operator_ends_a_players_keys_and_gets_one_that_works(app, client, queued):
    resp = client.delete(f"/api/v1/admin/players/{PLAYER}/sessions", headers=AUTH)
    assert resp.status_code == 200
    answer = resp.get_json()
    assert answer["player_id"] == PLAYER and answer["revoked"] is True
    assert submit(app.test_client(), **keyed(PLAYER)).status_code == 403
    new = answer["player_key"]
    assert new != keyed(PLAYER)["player_key"] and player_of("testing-secret", new) == PLAYER
    assert submit(app.test_client(), player_key=new).status_code == 202


@pytest.mark.parametrize("player_id", ["short", "a:b" * 8, "p" * 65])
def test_revoking_needs_a_player_id(client, redis_client, player_id):
    resp = client.delete(f"/api/v1/admin/players/{player_id}/sessions", headers=AUTH)
    assert resp.status_code == 404
    assert redis_client.dbsize() == 0
