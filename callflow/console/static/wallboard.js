/* Wallboard: callers waiting (live from Asterisk), today's answer figures, callbacks, operators. */
"use strict";

(() => {
  const { api, stream, el, duration, unavailable, setupLogin, say, STATE_LABELS } = Siaga;
  const $ = (id) => document.getElementById(id);
  let board = null;        // last /api/queues answer, and when it came
  let boardAt = 0;
  let operators = [];
  let operatorsAt = 0;
  let pending = null;

  async function loadQueues() {
    const panels = [$("panel-emergency"), $("panel-nonemergency")];
    try {
      board = await api("GET", "/api/queues");
      boardAt = Date.now();
      panels.forEach((p) => unavailable(p, null));
    } catch (e) {
      board = null;
      panels.forEach((p) => unavailable(p, e));
    }
    renderQueues();
  }

  function renderQueues() {
    const elapsed = (Date.now() - boardAt) / 1000;
    for (const cls of ["emergency", "nonemergency"]) {
      const q = board && board.queues.find((x) => x.call_class === cls);
      $(`${cls}-waiting`).textContent = q ? String(q.waiting) : "–";
      $(`${cls}-waiting`).classList.toggle("alert", Boolean(q && q.waiting > 0));
      $(`${cls}-longest`).textContent = q && q.waiting > 0 ? duration(q.longest_wait_s + elapsed) : "–";
    }
  }

  async function loadStats() {
    try {
      const s = await api("GET", "/api/calls/stats/today");
      unavailable($("panel-stats"), null);
      const pct = (n) => (s.offered ? ` (${Math.round((100 * n) / s.offered)} %)` : "");
      $("stat-offered").textContent = s.offered;
      $("stat-10").textContent = s.within_10s + pct(s.within_10s);
      $("stat-15").textContent = s.within_15s + pct(s.within_15s);
      $("stat-20").textContent = s.within_20s + pct(s.within_20s);
      $("stat-abandoned").textContent = s.abandoned;
      $("stat-short").textContent = s.short_abandons;
      // the same over genuine calls (calls tagged prank, silent or accidental left out)
      const gpct = (n) => (s.genuine_offered ? ` (${Math.round((100 * n) / s.genuine_offered)} %)` : "");
      $("genuine-offered").textContent = s.genuine_offered;
      $("genuine-10").textContent = s.genuine_within_10s + gpct(s.genuine_within_10s);
      $("genuine-15").textContent = s.genuine_within_15s + gpct(s.genuine_within_15s);
      $("genuine-20").textContent = s.genuine_within_20s + gpct(s.genuine_within_20s);
      renderNuisance(s);
    } catch (e) {
      unavailable($("panel-stats"), e);
      unavailable($("panel-nuisance"), e);
    }
  }

  function renderNuisance(s) {
    unavailable($("panel-nuisance"), null);
    const hours = Object.entries(s.nuisance_by_hour);
    $("nuisance-hours").replaceChildren(...(hours.length ? hours.map(([h, v]) => el("li", { "data-hour": h,
      text: `${h}:00 ${v.nuisance}/${v.calls} (${Math.round(100 * (v.share || 0))} %)` }))
      : [el("li", { class: "sub", text: "no offered calls yet" })]));
    $("nuisance-masked").textContent = s.numbers_masked ? "(masked: supervisors see the numbers)" : "";
    $("nuisance-numbers").replaceChildren(...(s.top_repeat_numbers.length
      ? s.top_repeat_numbers.map((t) => el("li", { text: `${t.number}: ${t.nuisance_calls} call(s)` }))
      : [el("li", { class: "sub", text: "none" })]));
  }

  async function loadCallbacks() {
    try {
      const list = await api("GET", "/api/callbacks?open_only=true");
      unavailable($("panel-callbacks"), null);
      $("callbacks-open").textContent = list.length;
    } catch (e) {
      unavailable($("panel-callbacks"), e);
    }
  }

  // each node sharing the store (two-node centres; a single engine has none and the panel stays hidden):
  // times on the centre's clock, as the engines' heartbeats give them
  async function loadNodes() {
    const panel = $("panel-nodes");
    try {
      const list = await api("GET", "/api/nodes");
      unavailable(panel, null);
      panel.hidden = list.length === 0;
      $("nodes").replaceChildren(...list.map(nodeRow));
    } catch (e) {
      panel.hidden = false;
      $("nodes").replaceChildren(); // never leave an old "alive" standing under the error
      unavailable(panel, e);
    }
  }

  function nodeRow(n) {
    const name = el("td", { class: "node-name" }, n.node);
    if (n.leader) name.append(" ", el("span", { class: "node-tag leader", text: "leader" }));
    if (n.here) name.append(" ", el("span", { class: "node-tag here", text: "this console" }));
    const engine = n.engine_up
      ? el("td", { class: "node-engine", text: `up since ${Siaga.when(n.started_at)}` })
      : el("td", { class: "node-engine down", text: `silent since ${Siaga.when(n.heartbeat_at)}` });
    const asterisk = n.asterisk === "up" ? "up"
      : n.asterisk === "unreachable"
        ? (n.asterisk_down_since ? `unreachable since ${Siaga.when(n.asterisk_down_since)}` : "unreachable")
        : "unknown (engine silent)";
    return el("tr", { "data-node": n.node, "data-state": n.state }, name,
      el("td", {}, el("span", { class: `state-badge node-state node-${n.state}`, text: n.state })),
      engine, el("td", { class: `node-asterisk${n.asterisk === "up" ? "" : " down"}`, text: asterisk }));
  }

  async function loadOperators() {
    try {
      operators = await api("GET", "/api/operators");
      operatorsAt = Date.now();
      unavailable($("panel-operators"), null);
    } catch (e) {
      operators = [];
      unavailable($("panel-operators"), e);
    }
    renderOperators();
  }

  let sessions = [];       // listen-in sessions (GET /api/listen), supervisors only
  const MODES = [["listen", "Listen"], ["whisper", "Whisper"], ["barge", "Barge"]];

  async function loadSessions() {
    if (!me || me.role !== "supervisor") return;
    try { sessions = await api("GET", "/api/listen"); } catch (e) { sessions = []; say($("listen-msg"), e.message, "error"); }
    renderOperators();
  }

  async function listenAction(path, body) {
    say($("listen-msg"), "");
    try { await api("POST", path, body); loadSessions(); }
    catch (e) { say($("listen-msg"), e.message, "error"); }
  }

  function listenCell(o) {
    if (!me || me.role !== "supervisor") return el("td", {});
    const mine = sessions.find((s) => s.operator === o.operator && s.state !== "ended" && s.supervisor === me.name);
    const cell = el("td", { class: "listen", "data-operator": o.operator });
    if (mine) {
      cell.append(el("span", { class: `listen-state ${mine.state}`, text: mine.state === "ringing"
        ? "your phone is ringing…" : `${mine.mode} since ${Siaga.when(mine.started_at)}` }), " ");
      for (const [mode, label] of MODES.filter(([m]) => m !== mine.mode && mine.state === "active")) {
        const b = el("button", { type: "button", class: "listen-mode", "data-mode": mode, text: label });
        b.addEventListener("click", () => listenAction(`/api/listen/${mine.id}/mode`, { mode }));
        cell.append(b, " ");
      }
      const stop = el("button", { type: "button", class: "listen-stop", text: "Stop" });
      stop.addEventListener("click", () => listenAction(`/api/listen/${mine.id}/stop`));
      cell.append(stop);
    } else if (o.state === "on_call") {
      for (const [mode, label] of MODES) {
        const b = el("button", { type: "button", class: "listen-start", "data-mode": mode, text: label });
        b.addEventListener("click", () => listenAction("/api/listen", { operator: o.operator, mode }));
        cell.append(b, " ");
      }
    }
    return cell;
  }

  function renderOperators() {
    const elapsed = (Date.now() - operatorsAt) / 1000;
    $("operators").replaceChildren(...operators.map((o) => el("tr", { "data-operator": o.operator },
      el("td", { text: o.operator }),
      el("td", {}, el("span", { class: `state-badge state-${o.state}`, "data-state": o.state, text: STATE_LABELS[o.state] || o.state })),
      el("td", { text: o.reason || "" }), el("td", { text: duration(o.seconds_in_state + elapsed) }),
      listenCell(o))));
  }

  const ALERT_TITLES = { service_level: "Service level below target", emergency_wait: "Emergency caller waiting",
    callback_overdue: "Callback overdue" };

  async function loadAlerts() {
    try {
      const list = await api("GET", "/api/thresholds");
      unavailable($("panel-alerts"), null);
      $("panel-alerts").classList.toggle("alarm", list.some((a) => a.active && !a.acknowledged_at));
      $("alerts").replaceChildren(...(list.length ? list.map(alertItem) : [el("li", { class: "sub", text: "all within limits" })]));
    } catch (e) { unavailable($("panel-alerts"), e); }
  }

  function alertItem(a) {
    const when = (t) => Siaga.when(t);
    const state = !a.active ? "cleared" : a.acknowledged_at ? "acknowledged" : "raised";
    const status = !a.active ? `cleared ${when(a.cleared_at)}`
      : a.acknowledged_at ? `acknowledged by ${a.acknowledged_by} at ${when(a.acknowledged_at)}` : `since ${when(a.raised_at)}`;
    const li = el("li", { class: `alert-item ${state}`, "data-alert": a.id, "data-kind": a.kind },
      el("strong", { text: ALERT_TITLES[a.kind] || a.kind }), " — ", el("span", { text: a.detail }), " ",
      el("span", { class: "sub alert-status", text: `(${status})` }));
    if (state === "raised" && me && me.role === "supervisor") {
      const b = el("button", { type: "button", class: "ack", text: "Acknowledge" });
      b.addEventListener("click", async () => {
        say($("alerts-msg"), "");
        try { await api("POST", `/api/thresholds/${a.id}/ack`); loadAlerts(); }
        catch (e) { if (e.status === 409 || e.status === 403) say($("alerts-msg"), e.message, "error"); else unavailable($("panel-alerts"), e); }
      });
      li.append(" ", b);
    }
    return li;
  }

  function refreshSoon() {
    // several events arrive together (join, called, connect): one read of Asterisk for all of them
    if (pending) return;
    pending = setTimeout(() => { pending = null; loadQueues(); }, 150);
  }

  function onMessage(m) {
    if (m.type.startsWith("queue.") || m.type.startsWith("agent.")) refreshSoon();
    if (m.type === "queue.abandon" || m.type === "agent.complete" || m.type === "call.record") loadStats();
    if (m.type.startsWith("member.") || m.type.startsWith("agent.")) loadOperators();
    if (m.type === "call.record" || m.type === "callback.changed") loadCallbacks(); // open/answered/closed
    if (m.type === "threshold.changed") loadAlerts();
    if (m.type === "listen.changed") loadSessions();
    if (m.type === "gap" || (m.type === "link" && m.state === "up")) loadAll();
  }

  function loadAll() {
    loadQueues(); loadStats(); loadCallbacks(); loadOperators(); loadAlerts(); loadSessions(); loadNodes();
  }

  let me = null;

  setupLogin(["supervisor", "admin"], (user) => {
    me = user;
    loadAll();
    stream(onMessage, (state) => {
      $("link").textContent = state;
      $("link").classList.toggle("live", state === "live");
      if (state === "live") loadAll();
    });
    setInterval(() => { renderQueues(); renderOperators(); }, 1000);
    setInterval(loadAll, 15000); // a backstop; the stream is what keeps the board current
    setInterval(loadNodes, 2000); // heartbeats are not streamed: a lost node shows within 2 s
  });
})();
