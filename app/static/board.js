"use strict";
// A leaderboard: the game's windows as tabs, the periods of a window to pick from, paging,
// "find me", friends, live refresh and two charts. Scores are shown in the game's format.
(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("board");
  const game = root.dataset.game;
  const variant = root.dataset.variant;
  const format = root.dataset.format || "integer";
  const unit = root.dataset.unit || "";
  const hasSubscore = Boolean(root.dataset.subscore);
  const unique = (root.dataset.ties || "unique") === "unique";
  const LIMIT = 20;
  const AROUND = 10;
  const FRIENDS_KEY = "hiscore.friends";
  const PLAYER_ID = /^[A-Za-z0-9_-]{16,64}$/;
  // mode "page" shows a page from `offset`; "around" the rows around the player (Find me on a
  // board whose ranks can be shared, where a rank is not a row's place).
  const view = { window: "alltime", period: null, offset: 0, mode: "page", stamp: null, total: 0 };
  const info = { endsAt: {}, periods: [] };
  const base = `/games/${game}/boards/${variant}`;

  const show = (score) => hiscore.formatScore(score, format, unit);

  function say(text) {
    $("message").textContent = text;
  }

  // The query of the board being looked at: its window and, for a finished one, its period.
  function scope() {
    return `window=${view.window}` + (view.period ? `&period=${encodeURIComponent(view.period)}` : "");
  }

  function rowOf(entry, mine) {
    const tr = document.createElement("tr");
    tr.dataset.player = entry.player_id;
    tr.dataset.rank = entry.rank;
    if (entry.player_id === mine) tr.classList.add("me");
    const cells = [[entry.rank, ""], [entry.name, ""], [show(entry.score), "num"]];
    if (hasSubscore) cells.push([entry.subscore ?? "", "num"]);
    cells.push([hiscore.when(entry.achieved_at), ""]);
    for (const [text, kind] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      if (kind) td.className = kind;
      tr.append(td);
    }
    return tr;
  }

  function fill(tbody, entries) {
    const mine = (hiscore.player() || {}).player_id;
    tbody.replaceChildren(...entries.map((entry) => rowOf(entry, mine)));
  }

  function renderPage(page) {
    fill($("rows"), page.entries);
    view.total = page.total;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.entries.length;
    $("page-info").textContent = `${first}–${last} of ${page.total.toLocaleString()}`;
    $("prev").disabled = page.offset === 0;
    $("next").disabled = last >= page.total;
    renderUpdated(page.updated_at);
    if (!page.total) say("Nobody is on this board yet.");
  }

  function renderAround(standing) {
    fill($("rows"), standing.neighbours);
    view.total = standing.total;
    $("page-info").textContent = `around you, of ${standing.total.toLocaleString()}`;
    $("prev").disabled = false; // back to the pages, from the top
    $("next").disabled = true;
    renderUpdated(standing.updated_at);
  }

  function renderUpdated(updatedAt) {
    const live = view.period ? "" : "; refreshes by itself";
    $("updated").textContent = updatedAt ? `Updated ${hiscore.when(updatedAt)}${live}.` : "No games yet.";
  }

  function mineQuery(me) {
    return `${base}/players/${encodeURIComponent(me.player_id)}?${scope()}`;
  }

  async function load(force = false) {
    try {
      if (view.mode === "around") {
        const me = hiscore.player();
        const standing = await hiscore.call("GET", `${mineQuery(me)}&around=${AROUND}`);
        const stamp = ["around", standing.updated_at, standing.total, scope()].join("|");
        if (force || stamp !== view.stamp) {
          view.stamp = stamp;
          renderAround(standing);
          loadFriends();
        }
        return;
      }
      const page = await hiscore.call("GET", `${base}?${scope()}&limit=${LIMIT}&offset=${view.offset}`);
      const stamp = [page.updated_at, page.total, scope(), view.offset].join("|");
      if (force || stamp !== view.stamp) {
        view.stamp = stamp;
        renderPage(page);
        if (page.total) say("");
        loadFriends();
      }
    } catch (error) {
      say(error.status === 404 && view.mode === "around" ? "You are not on this board." : error.message);
    }
  }

  // ---- Periods: the window's readable periods, newest (the current one) first.

  function periodLabel(period, index) {
    if (period.period === "all") return "All time";
    const from = period.starts_at ? new Date(hiscore.ms(period.starts_at)) : null;
    // ends_at is the first instant after the period: its last day is the day before.
    const to = period.ends_at ? new Date(hiscore.ms(period.ends_at) - 1) : null;
    const day = (d) => d.toLocaleDateString([], { day: "numeric", month: "short", timeZone: "UTC" });
    const span = from && to ? (view.window === "daily" ? ` (${day(from)})` : ` (${day(from)} – ${day(to)})`) : "";
    const now = index === 0 && isCurrent(period) ? ", now" : "";
    return `${period.period}${span}${now}`;
  }

  function isCurrent(period) {
    const end = hiscore.ms(period.ends_at);
    const start = hiscore.ms(period.starts_at);
    const now = Date.now();
    return (start === null || start <= now) && (end === null || now < end);
  }

  async function loadPeriods() {
    const picker = $("period-picker");
    if (view.window === "alltime") {
      picker.hidden = true;
      info.periods = [];
      return;
    }
    try {
      const answer = await hiscore.call("GET", `${base}/periods?window=${view.window}`);
      info.periods = answer.periods;
    } catch (_) {
      info.periods = []; // the current period is still shown; only the picker is missing
    }
    const select = $("period");
    select.replaceChildren(...info.periods.map((period, index) => {
      const option = document.createElement("option");
      option.value = index === 0 && isCurrent(period) ? "" : period.period;
      option.textContent = periodLabel(period, index);
      return option;
    }));
    select.value = view.period || "";
    picker.hidden = false;
    renderResets();
  }

  // "resets in …" for the current period, when a finished one ended for an earlier one.
  function renderResets() {
    const resets = $("resets");
    if (view.window === "alltime") {
      resets.textContent = "";
      return;
    }
    if (view.period) {
      const chosen = info.periods.find((p) => p.period === view.period);
      resets.textContent = chosen && chosen.ends_at ? `ended ${hiscore.when(chosen.ends_at)}` : "";
      return;
    }
    const end = hiscore.ms(info.endsAt[view.window]);
    if (end === null) {
      resets.textContent = "";
    } else if (!info.periods.length && view.window === "season") {
      resets.textContent = `the first season starts in ${hiscore.until(end - Date.now())}`;
    } else {
      resets.textContent = `resets in ${hiscore.until(end - Date.now())}`;
    }
  }

  async function loadInfo() {
    try {
      const about = await hiscore.call("GET", `/games/${game}`);
      info.endsAt = about.ends_at || {};
    } catch (_) {
      info.endsAt = {};
    }
  }

  // When the current period ends the board starts afresh: read the game and periods again.
  async function watchReset() {
    const end = hiscore.ms(info.endsAt[view.window]);
    if (!view.period && end !== null && Date.now() >= end) {
      await loadInfo();
      await loadPeriods();
      await load(true);
      loadStats();
    }
    renderResets();
  }

  // ---- Stats: two bar charts.

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
      const stats = await hiscore.call("GET", `${base}/stats?${scope()}`);
      if (!stats.computed_at) {
        $("stats-summary").textContent = "Stats are computed every minute; none yet.";
      } else {
        $("stats-summary").textContent = `${stats.count} games by ${stats.players} players · ` +
          `best ${show(stats.best)} · median ${show(stats.median)} · ` +
          `90% score ${show(stats.p90)} or better · as of ${hiscore.when(stats.computed_at)}`;
      }
      bars($("histogram"), stats.histogram.map((b) => ({ value: b.count, b })),
           (i) => (i.b.from === i.b.to ? show(i.b.from) : `${show(i.b.from)}–${show(i.b.to)}`));
      bars($("over-time"), stats.over_time.counts.map((c) => ({ value: c.count, at: c.at })),
           (i) => hiscore.when(i.at));
    } catch (error) {
      $("stats-summary").textContent = error.message;
    }
  }

  // ---- Find me.

  async function findMe() {
    const me = hiscore.player();
    if (!me) {
      say("Play a game first: then this finds your place.");
      return;
    }
    try {
      const standing = await hiscore.call("GET", `${mineQuery(me)}&around=${AROUND}`);
      if (unique) {
        // Ranks are places: the player's row is on the page that holds their rank.
        view.mode = "page";
        view.offset = Math.floor((standing.rank - 1) / LIMIT) * LIMIT;
        await load(true);
      } else {
        view.mode = "around";
        view.stamp = ["around", standing.updated_at, standing.total, scope()].join("|");
        renderAround(standing);
        loadFriends();
      }
      const row = $("rows").querySelector(`tr[data-player="${CSS.escape(me.player_id)}"]`);
      if (row) row.scrollIntoView({ block: "center" });
      const better = standing.percentile === undefined ? ""
        : `, better than ${standing.percentile} % of players`;
      say(`You are #${standing.rank} of ${standing.total}${better}.`);
    } catch (error) {
      say(error.status === 404 ? "You are not on this board yet." : error.message);
    }
  }

  // ---- Friends: player ids kept in this browser, looked up on the board in one request.

  function friends() {
    try {
      const stored = JSON.parse(localStorage.getItem(FRIENDS_KEY));
      return Array.isArray(stored) ? stored.filter((id) => PLAYER_ID.test(id)) : [];
    } catch (_) {
      return [];
    }
  }

  function keepFriends(ids) {
    localStorage.setItem(FRIENDS_KEY, JSON.stringify(ids));
  }

  function renderFriendList() {
    const items = friends().map((id) => {
      const li = document.createElement("li");
      li.dataset.player = id;
      const code = document.createElement("code");
      code.textContent = id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${id}`);
      remove.addEventListener("click", () => {
        keepFriends(friends().filter((other) => other !== id));
        renderFriendList();
        loadFriends();
      });
      li.append(code, remove);
      return li;
    });
    $("friend-list").replaceChildren(...items);
    const me = hiscore.player();
    $("my-id").textContent = me ? `Yours is ${me.player_id}.` : "";
  }

  async function loadFriends() {
    const me = hiscore.player();
    const listed = friends();
    const ids = [...new Set([...(me ? [me.player_id] : []), ...listed])].slice(0, 100);
    if (!listed.length) {
      $("friends-table").hidden = true;
      $("friends-message").textContent = "";
      return;
    }
    const body = { player_ids: ids, window: view.window };
    if (view.period) body.period = view.period;
    try {
      const answer = await hiscore.call("POST", `${base}/lookup`, { body });
      fill($("friend-rows"), answer.rows);
      $("friends-table").hidden = !answer.rows.length;
      const missing = answer.missing.filter((id) => !me || id !== me.player_id);
      $("friends-message").textContent = missing.length
        ? `Not on this board: ${missing.join(", ")}.` : "";
    } catch (error) {
      $("friends-table").hidden = true;
      $("friends-message").textContent = error.message;
    }
  }

  $("friend-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("friend-id").value.trim();
    const me = hiscore.player();
    if (!PLAYER_ID.test(id)) {
      $("friends-message").textContent = "A player id is 16 to 64 letters, digits, - or _.";
      return;
    }
    if (me && id === me.player_id) {
      $("friends-message").textContent = "That is your own id: you are always listed.";
      return;
    }
    const listed = friends();
    if (!listed.includes(id)) {
      if (listed.length >= 99) {
        $("friends-message").textContent = "That is as many friends as a board can look up.";
        return;
      }
      keepFriends([...listed, id]);
    }
    $("friend-id").value = "";
    renderFriendList();
    loadFriends();
  });

  // ---- Controls.

  function selectWindow(tab) {
    for (const other of document.querySelectorAll("[role=tab]")) {
      other.setAttribute("aria-selected", String(other === tab));
    }
    view.window = tab.dataset.window;
    view.period = null;
    view.offset = 0;
    view.mode = "page";
    say("");
    loadPeriods();
    renderResets();
    load(true);
    loadStats();
  }

  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectWindow(tab));
  }
  $("period").addEventListener("change", () => {
    view.period = $("period").value || null;
    view.offset = 0;
    view.mode = "page";
    say("");
    renderResets();
    load(true);
    loadStats();
  });
  $("prev").addEventListener("click", () => {
    view.offset = view.mode === "around" ? 0 : Math.max(0, view.offset - LIMIT);
    view.mode = "page";
    load(true);
  });
  $("next").addEventListener("click", () => {
    view.offset += LIMIT;
    load(true);
  });
  $("find-me").addEventListener("click", findMe);

  renderFriendList();
  const findFirst = new URLSearchParams(location.search).get("find") === "me";
  const start = findFirst ? findMe() : load(true);
  start.then(loadStats);
  loadInfo().then(renderResets);
  // Live refresh: a cheap read every few seconds while the page is in view.
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, 3000);
  setInterval(() => {
    if (document.visibilityState === "visible") loadStats();
  }, 60000);
  setInterval(watchReset, 30000);
})();
