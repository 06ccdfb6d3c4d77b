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

  function player() {
    try {
      return JSON.parse(localStorage.getItem("hiscore.player"));
    } catch (_) {
      return null;
    }
  }

  function remember(data) {
    localStorage.setItem("hiscore.player",
      JSON.stringify({ player_id: data.player_id, player_key: data.player_key }));
  }

  // Who is playing: the stored player, confirmed by the service, or a new one.
  // A session proves the player; with a variant it also starts a run (its token).
  async function startSession(game, variant) {
    const run = variant === undefined ? {} : { variant: String(variant) };
    let data;
    try {
      data = await call("POST", `/games/${game}/sessions`, { body: { ...(player() || {}), ...run } });
    } catch (error) {
      if (error.status !== 403) throw error;
      localStorage.removeItem("hiscore.player"); // a key from another deployment
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
