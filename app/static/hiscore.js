"use strict";
// What every page shares: calling the API with human error messages, and who the player is.
const hiscore = (() => {
  const UNAVAILABLE = "The leaderboard is unavailable right now. Try again in a moment.";

  async function call(method, path, { body, headers = {} } = {}) {
    const url = path.startsWith("/api/") ? path : "/api/v1" + path;
    const init = { method, headers: { ...headers }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (_) {
      throw Object.assign(new Error("Cannot reach hiscore. Check your connection and try again."),
                          { status: 0 });
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = response.status >= 500 ? UNAVAILABLE
        : (data && data.detail) || `The request failed (${response.status}).`;
      throw Object.assign(new Error(message), { status: response.status, problem: data });
    }
    return data;
  }

  // The player's id, to find them on the boards. Their key is in the HttpOnly cookie alone,
  // which proves them to this origin; no script here ever holds it.
  function player() {
    try {
      const stored = JSON.parse(localStorage.getItem("hiscore.player"));
      return stored && stored.player_id ? { player_id: stored.player_id } : null;
    } catch (_) {
      return null;
    }
  }

  function remember(data) {
    // Overwrites what older pages kept here, the key included.
    localStorage.setItem("hiscore.player", JSON.stringify({ player_id: data.player_id }));
  }

  // Who is playing: the player of the cookie, or a new one (a revoked cookie is dropped by the
  // service's refusal, so the retry starts a new player).
  // A session proves the player; with a variant it also starts a run (its token).
  async function startSession(game, variant) {
    const run = variant === undefined ? {} : { variant: String(variant) };
    let data;
    try {
      data = await call("POST", `/games/${game}/sessions`, { body: run });
    } catch (error) {
      if (error.status !== 403) throw error;
      data = await call("POST", `/games/${game}/sessions`, { body: run });
    }
    remember(data);
    return data;
  }

  function when(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  return { call, player, remember, startSession, when };
})();
