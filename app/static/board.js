"use strict";
// A leaderboard: window tabs, paging, "find me", live refresh and two charts.
(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("board");
  const game = root.dataset.game;
  const variant = root.dataset.variant;
  const LIMIT = 20;
  const view = { window: "alltime", offset: 0, stamp: null, me: null, total: 0 };
  const base = `/games/${game}/boards/${variant}`;

  function say(text) {
    $("message").textContent = text;
  }

  function render(page) {
    const mine = (hiscore.player() || {}).player_id;
    const rows = page.entries.map((entry) => {
      const tr = document.createElement("tr");
      tr.dataset.player = entry.player_id;
      if (entry.player_id === mine) tr.classList.add("me");
      for (const text of [entry.rank, entry.name, entry.score, hiscore.when(entry.achieved_at)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    $("rows").replaceChildren(...rows);
    view.total = page.total;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.entries.length;
    $("page-info").textContent = `${first}–${last} of ${page.total.toLocaleString()}`;
    $("prev").disabled = page.offset === 0;
    $("next").disabled = last >= page.total;
    $("updated").textContent = page.updated_at
      ? `Updated ${hiscore.when(page.updated_at)}; refreshes by itself.` : "No games yet.";
    if (!page.total) say("Nobody is on this board yet.");
  }

  async function load(force = false) {
    try {
      const query = `window=${view.window}&limit=${LIMIT}&offset=${view.offset}`;
      const page = await hiscore.call("GET", `${base}?${query}`);
      const stamp = [page.updated_at, page.total, view.window, view.offset].join("|");
      if (force || stamp !== view.stamp) {
        view.stamp = stamp;
        render(page);
        if (page.total) say("");
      }
    } catch (error) {
      say(error.message);
    }
  }

  function bars(svg, items, label) {
    const width = 320;
    const height = 140;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    if (!items.length) return;
    const top = Math.max(...items.map((i) => i.value)) || 1;
    const step = width / items.length;
    items.forEach((item, index) => {
      const h = Math.max(1, (item.value / top) * (height - 20));
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("x", index * step + 1);
      rect.setAttribute("y", height - 16 - h);
      rect.setAttribute("width", Math.max(1, step - 2));
      rect.setAttribute("height", h);
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${label(item)}: ${item.value}`;
      rect.append(title);
      svg.append(rect);
    });
    for (const [index, anchor] of [[0, "start"], [items.length - 1, "end"]]) {
      const text = document.createElementNS("http://www.w3.org/2000/svg", "text");
      text.setAttribute("x", anchor === "start" ? 0 : width);
      text.setAttribute("y", height - 2);
      text.setAttribute("text-anchor", anchor);
      text.textContent = label(items[index]);
      svg.append(text);
    }
  }

  async function loadStats() {
    try {
      const stats = await hiscore.call("GET", `${base}/stats?window=${view.window}`);
      if (!stats.computed_at) {
        $("stats-summary").textContent = "Stats are computed every minute; none yet.";
      } else {
        $("stats-summary").textContent = `${stats.count} games by ${stats.players} players · ` +
          `best ${stats.best} · median ${stats.median} · 90% score ${stats.p90} or better · ` +
          `as of ${hiscore.when(stats.computed_at)}`;
      }
      bars($("histogram"), stats.histogram.map((b) => ({ value: b.count, b })),
           (i) => (i.b.from === i.b.to ? `${i.b.from}` : `${i.b.from}–${i.b.to}`));
      bars($("over-time"), stats.over_time.counts.map((c) => ({ value: c.count, at: c.at })),
           (i) => hiscore.when(i.at));
    } catch (error) {
      $("stats-summary").textContent = error.message;
    }
  }

  async function findMe() {
    const me = hiscore.player();
    if (!me) {
      say("Play a game first: then this finds your place.");
      return;
    }
    try {
      const standing = await hiscore.call(
        "GET", `${base}/players/${encodeURIComponent(me.player_id)}?window=${view.window}`);
      view.offset = Math.floor((standing.rank - 1) / LIMIT) * LIMIT;
      await load(true);
      const row = $("rows").querySelector(`tr[data-player="${CSS.escape(me.player_id)}"]`);
      if (row) {
        row.scrollIntoView({ block: "center" });
        say(`You are #${standing.rank} of ${standing.total}.`);
      }
    } catch (error) {
      say(error.status === 404 ? "You are not on this board yet." : error.message);
    }
  }

  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) {
        other.setAttribute("aria-selected", String(other === tab));
      }
      view.window = tab.dataset.window;
      view.offset = 0;
      load(true);
      loadStats();
    });
  }
  $("prev").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - LIMIT);
    load(true);
  });
  $("next").addEventListener("click", () => {
    view.offset += LIMIT;
    load(true);
  });
  $("find-me").addEventListener("click", findMe);

  const start = new URLSearchParams(location.search).get("find") === "me" ? findMe() : load(true);
  start.then(loadStats);
  // Live refresh: a cheap read every few seconds while the page is in view.
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, 3000);
  setInterval(() => {
    if (document.visibilityState === "visible") loadStats();
  }, 60000);
})();
