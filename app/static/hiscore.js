"use strict";
// What every page shares: calling the API with human error messages, who the player is,
// sending a game and following its verdict, and showing scores and times.
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

  // An instant of the API (ISO text or epoch ms) as a short local date and time.
  function when(instant) {
    if (instant === null || instant === undefined || instant === "") return "";
    return new Date(instant).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  // Epoch ms of an instant of the API, whichever way it is written; null for none.
  function ms(instant) {
    if (instant === null || instant === undefined || instant === "") return null;
    const value = typeof instant === "number" ? instant : Date.parse(instant);
    return Number.isFinite(value) ? value : null;
  }

  // A score as the game's `format` shows it: "integer", "time_ms" (m:ss.mmm) or "decimal:N"
  // (the score counts 10^-N units), followed by the game's unit if it has one.
  function formatScore(score, format = "integer", unit = "") {
    if (score === null || score === undefined || score === "") return "";
    const value = Number(score);
    let text;
    if (format === "time_ms") {
      const whole = Math.round(Math.abs(value));
      const minutes = Math.floor(whole / 60000);
      const seconds = Math.floor((whole % 60000) / 1000);
      const millis = whole % 1000;
      text = `${value < 0 ? "-" : ""}${minutes}:${String(seconds).padStart(2, "0")}.` +
        String(millis).padStart(3, "0");
    } else if (/^decimal:[1-6]$/.test(format)) {
      const places = Number(format.slice(8));
      if (Number.isInteger(value)) {
        // Digits, not a division: 10^-N has no exact binary form, the score's digits do.
        const digits = String(Math.abs(value)).padStart(places + 1, "0");
        text = `${value < 0 ? "-" : ""}${digits.slice(0, -places)}.${digits.slice(-places)}`;
      } else {
        text = (value / 10 ** places).toFixed(places);
      }
    } else {
      text = String(value);
    }
    return unit ? `${text} ${unit}` : text;
  }

  // How long until an instant, in words: "2 d 4 h", "3 h 5 min", "12 min", "under a minute".
  function until(milliseconds) {
    const minutes = Math.floor(Math.max(0, milliseconds) / 60000);
    if (minutes < 1) return "under a minute";
    const days = Math.floor(minutes / 1440);
    const hours = Math.floor((minutes % 1440) / 60);
    if (days) return hours ? `${days} d ${hours} h` : `${days} d`;
    if (hours) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
    return `${minutes} min`;
  }

  // 128 random bits as hex (crypto.randomUUID needs a secure context; this does not).
  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Sends a finished game. The same submission_id on every try: a retry never counts twice.
  async function submitScore(game, body) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await call("POST", `/games/${game}/scores`, { body });
      } catch (error) {
        const transient = error.status === 0 || error.status >= 500;
        if (!transient || attempt === 3) throw error;
        await new Promise((done) => setTimeout(done, 1000 * 2 ** attempt));
      }
    }
  }

  // Long-polls a queued submission until its verdict, for at most a minute.
  async function verdict(sent) {
    let status = sent;
    const deadline = Date.now() + 60_000;
    while (status.status === "queued" && Date.now() < deadline) {
      status = await call("GET", `${sent.status_url}?wait=25`);
    }
    return status;
  }

  return {
    call, player, remember, startSession, when, ms, formatScore, until, newId, submitScore,
    verdict,
  };
})();
