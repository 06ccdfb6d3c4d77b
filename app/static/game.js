"use strict";
// The guessing game: choose a maximum, guess with higher/lower hints, then get ranked.
// The service draws the number and answers each guess; the score is the guesses it answered.
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { max: 0, guesses: 0, name: "", session: null, pending: false };

  $("name").value = localStorage.getItem("hiscore.name") || "";

  $("setup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("name").value.trim();
    if (!name) return;
    localStorage.setItem("hiscore.name", name);
    state.name = name;
    state.max = Number(document.querySelector("input[name=max]:checked").value);
    // The run starts when the service has drawn its number: its token is the key to the run.
    $("start").disabled = true;
    try {
      state.session = await hiscore.startSession("guess", state.max);
    } catch (error) {
      $("setup-error").textContent = error.message;
      return;
    } finally {
      $("start").disabled = false;
    }
    $("setup-error").textContent = "";
    state.guesses = 0;
    state.pending = false;
    $("max").textContent = state.max;
    $("guess").max = state.max;
    $("count").textContent = "0";
    $("history").replaceChildren();
    $("feedback").textContent = "Make your first guess.";
    delete $("feedback").dataset.hint;
    $("setup").hidden = true;
    $("result").hidden = true;
    $("play").hidden = false;
    $("guess").focus();
  });

  $("guess-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.pending) return; // one guess at a time: the service answers them in turn
    const value = Number($("guess").value);
    $("guess").value = "";
    $("guess").focus();
    if (!Number.isInteger(value) || value < 1 || value > state.max) {
      $("feedback").textContent = `Enter a whole number from 1 to ${state.max}.`;
      return;
    }
    const session = state.session;
    let answer;
    state.pending = true;
    $("guess-button").disabled = true;
    try {
      answer = await hiscore.call("POST", `/games/guess/runs/${session.run_id}/guesses`, {
        body: { guess: value, token: session.token },
      });
    } catch (error) {
      $("feedback").textContent = error.message;
      delete $("feedback").dataset.hint;
      return;
    } finally {
      state.pending = false;
      $("guess-button").disabled = false;
    }
    state.guesses = answer.guesses;
    $("count").textContent = answer.guesses;
    if (answer.result === "correct") {
      finish(value);
      return;
    }
    const hint = answer.result;
    const item = document.createElement("li");
    item.textContent = `${value}: ${hint}`;
    $("history").prepend(item);
    $("feedback").textContent = `${value} is too ${hint === "higher" ? "low" : "high"}: go ${hint}!`;
    $("feedback").dataset.hint = hint;
  });

  $("again").addEventListener("click", () => {
    $("result").hidden = true;
    $("setup").hidden = false;
    $("start").focus();
  });

  function describe(status) {
    if (status.status === "accepted") {
      const r = status.ranks || {};
      const best = status.personal_best === false ? " (your best stays ahead of this one)" : "";
      return `Ranked #${status.rank} of all time, #${r.daily} today and #${r.weekly} this week${best}.`;
    }
    if (status.status === "rejected") return `Not ranked: ${status.reason}`;
    return "Still checking. Your rank will be on the board shortly.";
  }

  async function finish(number) {
    const count = state.guesses;
    $("play").hidden = true;
    $("result").hidden = false;
    $("summary").textContent =
      `The number was ${number}: you found it in ${count} ${count === 1 ? "guess" : "guesses"}.`;
    $("board-link").href = `/boards/guess/${state.max}?find=me`;
    $("verdict").textContent = "Checking…";
    $("verdict").dataset.status = "checking";
    try {
      const session = state.session;
      // Only the run: the service knows its score and how long it took.
      const sent = await hiscore.submitScore("guess", {
        name: state.name,
        variant: String(state.max),
        player_id: session.player_id, // proven by the cookie
        token: session.token,
        submission_id: hiscore.newId(),
      });
      const status = await hiscore.verdict(sent);
      $("verdict").textContent = describe(status);
      $("verdict").dataset.status = status.status;
    } catch (error) {
      $("verdict").textContent = error.message;
      $("verdict").dataset.status = "error";
    }
    $("board-link").focus();
  }
})();
