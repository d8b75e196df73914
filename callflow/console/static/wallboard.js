/* Wallboard: callers waiting (live from Asterisk), today's answer figures, callbacks, operators. */
"use strict";

(() => {
  const { api, stream, el, duration, unavailable, setupLogin } = Siaga;
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
    } catch (e) {
      unavailable($("panel-stats"), e);
    }
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

  function renderOperators() {
    const elapsed = (Date.now() - operatorsAt) / 1000;
    $("operators").replaceChildren(...operators.map((o) => el("tr", {},
      el("td", { text: o.operator }), el("td", {}, el("span", { class: "state-badge", text: o.state })),
      el("td", { text: o.reason || "" }), el("td", { text: duration(o.seconds_in_state + elapsed) }))));
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
    if (m.type === "call.record") loadCallbacks(); // a stored abandoned emergency call opens a callback
    if (m.type === "gap" || (m.type === "link" && m.state === "up")) loadAll();
  }

  function loadAll() {
    loadQueues(); loadStats(); loadCallbacks(); loadOperators();
  }

  setupLogin(["supervisor", "admin"], () => {
    loadAll();
    stream(onMessage, (state) => {
      $("link").textContent = state;
      $("link").classList.toggle("live", state === "live");
      if (state === "live") loadAll();
    });
    setInterval(() => { renderQueues(); renderOperators(); }, 1000);
    setInterval(loadAll, 15000); // a backstop; the stream is what keeps the board current
  });
})();
