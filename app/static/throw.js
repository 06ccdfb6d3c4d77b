"use strict";
// The paper plane: pick a plane, an angle and a power, watch it fly in a little wind, and the
// distance (in tenths of a metre) is the throw's score. Each throw adds to the player's total.
(() => {
  const $ = (id) => document.getElementById(id);
  const root = $("throw");
  const game = root.dataset.game;
  const variant = root.dataset.variant;
  const format = root.dataset.format;
  const unit = root.dataset.unit;
  const scoreMax = Number(root.dataset.scoreMax) || 1500;
  const canvas = $("field");
  const ctx = canvas.getContext("2d");

  // Each plane flies best at its own angle and power: below the power it falls short, above it
  // the paper flutters and stalls. `windage` is how far a metre per second of wind carries it
  // per second in the air; `wobble` how much a throw varies by itself.
  const PLANES = {
    dart: { name: "dart", reach: 92, angle: 12, spread: 18, power: 85, windage: 0.35, wobble: 0.03, hang: 3.5 },
    glider: { name: "glider", reach: 78, angle: 22, spread: 16, power: 60, windage: 1.2, wobble: 0.05, hang: 6.5 },
    stunt: { name: "stunt", reach: 64, angle: 35, spread: 22, power: 70, windage: 0.7, wobble: 0.18, hang: 5 },
  };
  const LAUNCH_HEIGHT = 1.8; // metres: a thrower's hand
  const state = { wind: 0, landings: [], busy: false };

  // Where a throw lands (metres) and how its flight looks: `at(u)` is the plane's position at
  // the share u of its flight, `ms` how long the flight is shown. wobble is in [-1, 1].
  function flight(plane, angle, power, wind, wobble) {
    const p = PLANES[plane];
    const aim = 0.2 + 0.8 * Math.exp(-(((angle - p.angle) / p.spread) ** 2));
    const push = power <= p.power ? power / p.power
      : 1 - 0.55 * ((power - p.power) / (100 - p.power)) ** 2;
    const hang = p.hang * (0.3 + 0.7 * aim * push);
    const metres = Math.max(0, (p.reach * aim * push + wind * p.windage * hang) * (1 + p.wobble * wobble));
    const top = Math.min(28, LAUNCH_HEIGHT + 1 + metres * Math.tan((angle * Math.PI) / 180) * 0.35);
    const peak = 0.22;
    const loops = plane === "stunt" && metres > 15;
    function at(u) {
      let x = metres * (1 - (1 - u) ** 1.5); // fast from the hand, slower as it glides
      let y = u < peak ? LAUNCH_HEIGHT + (top - LAUNCH_HEIGHT) * Math.sin((Math.PI / 2) * (u / peak))
        : top * (1 - ((u - peak) / (1 - peak)) ** 1.4);
      if (loops && u > 0.35 && u < 0.55) {
        const turn = 2 * Math.PI * ((u - 0.35) / 0.2);
        x += 3 * Math.sin(turn);
        y += 3 * (1 - Math.cos(turn));
      }
      return { x, y: Math.max(0, y) };
    }
    // Shown for over a second plus 30 ms a metre: never faster than the game's plausibility
    // rule (2 ms per tenth of a metre) allows.
    return { metres, at, ms: 1000 + 30 * metres };
  }

  function color(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  // The field in metres, mapped onto the canvas: 120 m wide (more for a longer throw), 30 m high.
  function view(width) {
    const ground = canvas.height - 30;
    return {
      ground,
      x: (m) => 20 + (m / width) * (canvas.width - 40),
      y: (m) => ground - (m / 30) * (ground - 10),
      width,
    };
  }

  function drawField(v, trail, plane, heading) {
    const line = color("--line", "#d9dde5");
    const muted = color("--muted", "#5b6473");
    const accent = color("--accent", "#2f5bd3");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = line;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(0, v.ground);
    ctx.lineTo(canvas.width, v.ground);
    ctx.stroke();
    ctx.fillStyle = muted;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    for (let m = 0; m <= v.width; m += v.width > 150 ? 20 : 10) {
      ctx.fillRect(v.x(m) - 0.5, v.ground, 1, 6);
      if (m % 20 === 0) ctx.fillText(`${m} m`, v.x(m), v.ground + 20);
    }
    for (const landing of state.landings) {
      ctx.fillRect(v.x(landing) - 1, v.ground - 10, 2, 10);
    }
    if (trail.length > 1) {
      ctx.strokeStyle = muted;
      ctx.lineWidth = 1;
      ctx.setLineDash([3, 4]);
      ctx.beginPath();
      trail.forEach((p, i) => (i ? ctx.lineTo(v.x(p.x), v.y(p.y)) : ctx.moveTo(v.x(p.x), v.y(p.y))));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (plane) {
      ctx.save();
      ctx.translate(v.x(plane.x), v.y(plane.y));
      ctx.rotate(heading);
      ctx.fillStyle = accent;
      ctx.beginPath();
      ctx.moveTo(9, 0);
      ctx.lineTo(-7, -5);
      ctx.lineTo(-4, 0);
      ctx.lineTo(-7, 5);
      ctx.closePath();
      ctx.fill();
      ctx.restore();
    }
  }

  // Plays a flight; resolves when the plane has landed, by the clock, even where the browser
  // holds back animation frames (a tab in the background).
  function animate(path) {
    const v = view(path.metres > 110 ? path.metres + 10 : 120);
    const trail = [];
    const started = performance.now();
    let done = false;
    function frame(now) {
      if (done) return;
      const u = Math.min(1, (now - started) / path.ms);
      const here = path.at(u);
      const ahead = path.at(Math.min(1, u + 0.01));
      const heading = u < 1 ? Math.atan2(v.y(ahead.y) - v.y(here.y), v.x(ahead.x) - v.x(here.x)) : 0;
      trail.push(here);
      drawField(v, trail, here, heading);
      if (u < 1) requestAnimationFrame(frame);
    }
    requestAnimationFrame(frame);
    return new Promise((landed) => {
      setTimeout(() => {
        done = true;
        trail.push(path.at(1));
        drawField(v, trail, path.at(1), 0);
        landed();
      }, path.ms);
    });
  }

  function newWind() {
    // A little wind, in whole metres per second: + behind the thrower, - in their face.
    state.wind = Math.floor(Math.random() * 7) - 3;
    const w = state.wind;
    $("wind").textContent = w === 0 ? "Wind: calm"
      : w > 0 ? `Wind: → ${w} m/s tailwind` : `Wind: ← ${-w} m/s headwind`;
    $("wind").dataset.wind = String(w);
  }

  function showSliders() {
    $("angle-out").textContent = `${$("angle").value}°`;
    $("power-out").textContent = `${$("power").value} %`;
  }

  function setBusy(busy) {
    state.busy = busy;
    $("throw-button").disabled = busy;
  }

  async function describe(status, session) {
    if (status.status === "rejected") return `Not counted: ${status.reason}`;
    if (status.status !== "accepted") return "Still checking. Your total will be on the board shortly.";
    try {
      const mine = await hiscore.call("GET", `/games/${game}/boards/${variant}/players/` +
        `${encodeURIComponent(session.player_id)}?window=alltime`);
      const throws = mine.subscore ? ` in ${mine.subscore} ${mine.subscore === 1 ? "throw" : "throws"}` : "";
      const better = mine.percentile === undefined ? "" : `, better than ${mine.percentile} % of players`;
      return `Your total is ${hiscore.formatScore(mine.score, format, unit)}${throws}: ` +
        `#${mine.rank} of ${mine.total} all time${better}.`;
    } catch (_) {
      return `Counted: #${status.rank} of all time.`;
    }
  }

  $("name").value = localStorage.getItem("hiscore.name") || "";
  $("angle").addEventListener("input", showSliders);
  $("power").addEventListener("input", showSliders);

  $("throw-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.busy) return;
    const name = $("name").value.trim();
    if (!name) return;
    localStorage.setItem("hiscore.name", name);
    const plane = document.querySelector("input[name=plane]:checked").value;
    const angle = Number($("angle").value);
    const power = Number($("power").value);
    const wind = state.wind;
    setBusy(true);
    $("throw-error").textContent = "";
    $("verdict").textContent = "";
    delete $("verdict").dataset.status;
    let session;
    try {
      // A run token per throw: the service counts each token once.
      session = await hiscore.startSession(game, variant);
    } catch (error) {
      $("throw-error").textContent = error.message;
      setBusy(false);
      return;
    }
    const tokenAt = performance.now();
    const path = flight(plane, angle, power, wind, Math.random() * 2 - 1);
    const tenths = Math.min(scoreMax, Math.max(0, Math.round(path.metres * 10)));
    $("distance").textContent = `Your ${plane} is in the air…`;
    canvas.setAttribute("aria-label", `A ${plane} in flight`);
    await animate(path);
    state.landings.push(tenths / 10);
    const shown = hiscore.formatScore(tenths, format, unit);
    $("distance").textContent = `Your ${plane} flew ${shown}.`;
    $("distance").dataset.score = String(tenths);
    canvas.setAttribute("aria-label", `The ${plane} landed at ${shown}`);
    $("verdict").textContent = "Checking…";
    $("verdict").dataset.status = "checking";
    try {
      const sent = await hiscore.submitScore(game, {
        name,
        variant,
        score: tenths,
        subscore: 1, // one throw: totals count the throws, and fewer to a total ranks first
        metadata: { plane, wind },
        duration_ms: Math.floor(performance.now() - tokenAt),
        player_id: session.player_id, // proven by the cookie
        token: session.token,
        submission_id: hiscore.newId(),
      });
      const status = await hiscore.verdict(sent);
      $("verdict").textContent = await describe(status, session);
      $("verdict").dataset.status = status.status;
    } catch (error) {
      $("verdict").textContent = error.message;
      $("verdict").dataset.status = "error";
    }
    newWind();
    setBusy(false);
  });

  showSliders();
  newWind();
  drawField(view(120), [], null, 0);
})();
