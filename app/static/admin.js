"use strict";
// The operator page: the token is asked once per tab and kept in sessionStorage.
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = "hiscore.operator";
  let statusTimer = null;

  const auth = () => ({ Authorization: `Bearer ${sessionStorage.getItem(KEY)}` });
  const call = (method, path, body) => hiscore.call(method, path, { body, headers: auth() });

  function show(loggedIn) {
    $("login").hidden = loggedIn;
    $("console").hidden = !loggedIn;
    clearInterval(statusTimer);
    if (loggedIn) {
      refresh();
      statusTimer = setInterval(refresh, 5000);
    }
  }

  function entry(term, detail) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = detail;
    return [dt, dd];
  }

  async function refresh() {
    try {
      const s = await call("GET", "/admin/status");
      const beat = Object.entries(s.beat).map(([job, run]) =>
        `${job}: ${run.ok ? "ok" : "failed"} at ${new Date(run.finished_at).toLocaleTimeString()}`);
      const rejected = Object.entries(s.submissions.rejected).map(([code, n]) => `${code} ${n}`);
      $("status").replaceChildren(
        ...entry("Queued", `ingest ${s.queues.ingest}, maintenance ${s.queues.maintenance}`),
        ...entry("Workers", s.workers.map((w) => w.hostname).join(", ") || "none reporting"),
        ...entry("Beat", beat.join("; ") || "no run yet"),
        ...entry("Accepted", String(s.submissions.accepted)),
        ...entry("Rejected", rejected.join(", ") || "none"),
      );
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        sessionStorage.removeItem(KEY);
        $("login-message").textContent = "That token was not accepted.";
        show(false);
      } else {
        $("status").replaceChildren(...entry("Status", error.message));
      }
    }
  }

  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value);
    $("token").value = "";
    $("login-message").textContent = "Checking…";
    try {
      await call("GET", "/admin/status");
      $("login-message").textContent = "";
      show(true);
    } catch (error) {
      sessionStorage.removeItem(KEY);
      $("login-message").textContent =
        error.status === 401 || error.status === 403 ? "That token was not accepted." : error.message;
    }
  });

  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    show(false);
  });

  async function follow(statusUrl) {
    for (;;) {
      const task = await call("GET", statusUrl);
      const { done, total } = task.progress;
      $("progress").max = Math.max(total, 1);
      $("progress").value = task.state === "done" ? Math.max(total, 1) : done;
      const percent = task.state === "done" ? 100 : total ? Math.floor((100 * done) / total) : 0;
      $("task").textContent = `${task.kind} ${task.state}: ${done.toLocaleString()} of ` +
        `${total.toLocaleString()} log entries (${percent}%)`;
      $("task").dataset.state = task.state;
      if (task.state === "done" || task.state === "failed") {
        if (task.error) $("task").textContent += `: ${task.error}`;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async function start(kind) {
    const [game, variant] = $("scope").value.split("/");
    const body = {};
    if (game) body.game = game;
    if (variant) body.variant = variant;
    $("progress").value = 0;
    $("task").textContent = `Starting the ${kind}…`;
    for (const id of ["rebuild", "prune"]) $(id).disabled = true;
    try {
      const started = await call("POST", `/admin/${kind}`, body);
      await follow(started.status_url);
      refresh();
    } catch (error) {
      $("task").textContent = error.message;
      $("task").dataset.state = "error";
    } finally {
      for (const id of ["rebuild", "prune"]) $(id).disabled = false;
    }
  }

  $("rebuild").addEventListener("click", () => start("rebuild"));
  $("prune").addEventListener("click", () => start("prune"));
  show(Boolean(sessionStorage.getItem(KEY)));
})();
