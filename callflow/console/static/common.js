/* siaga112 console: shared helpers (session, CSRF, API calls, live stream, small DOM builders). */
"use strict";

const Siaga = (() => {
  let csrf = null;
  let me = null;

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const res = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.message) || res.statusText);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  async function resume() {
    try {
      me = await api("GET", "/api/auth/me");
      csrf = (await api("GET", "/api/auth/csrf")).csrf_token;
      return me;
    } catch (e) {
      if (e.status === 401) return null;
      throw e;
    }
  }

  async function login(name, password) {
    const r = await api("POST", "/api/auth/login", { name, password });
    csrf = r.csrf_token;
    me = r.user;
    return me;
  }

  async function logout() {
    try { await api("POST", "/api/auth/logout"); } finally { me = null; csrf = null; }
  }

  const STREAM_TYPES = ["queue.join", "queue.leave", "queue.abandon", "agent.called", "agent.connect",
    "agent.complete", "agent.noanswer", "member.status", "member.added", "member.removed",
    "member.pause", "call.queue_entry", "call.ivr", "call.silent", "call.key", "call.record", "incident.changed", "callback.changed",
    "threshold.changed", "listen.changed", "link", "gap"];

  // operator states as people say them (the API's values are queues.states.State)
  const STATE_LABELS = { offline: "offline", ready: "ready", ringing: "ringing", on_call: "on a call",
    wrapup: "wrap-up", paused: "paused" };

  /* A message line: kind "ok" (success colour), "error" (warning colour), or "" to clear it. */
  function say(node, text, kind) {
    node.textContent = text || "";
    node.classList.toggle("ok", Boolean(text) && kind === "ok");
    node.classList.toggle("error", Boolean(text) && kind !== "ok");
  }

  function stream(onMessage, onState) {
    const es = new EventSource("/api/events");
    for (const t of STREAM_TYPES) {
      es.addEventListener(t, (ev) => onMessage(JSON.parse(ev.data)));
    }
    // the server ended the session (logout elsewhere, account disabled): back to the login form
    es.addEventListener("session.ended", () => { es.close(); onState("ended"); location.reload(); });
    es.onopen = () => onState("live");
    es.onerror = () => onState("reconnecting");
    return es;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    const h = Math.floor(m / 60);
    const mm = String(m % 60).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  /* Times as the centre's clock shows them (the site's [centre] timezone, from /api/auth/me), whatever
     zone the operator's browser is set to: "14:05:12", "4 Dec 14:05:12", or "14:05" (style "hm"). */
  function centreZone() { return (me && me.centre_timezone) || "UTC"; }
  function when(iso, style) {
    if (!iso) return "–";
    const at = iso instanceof Date ? iso : new Date(iso);
    if (Number.isNaN(at.getTime())) return "?";
    const opts = { timeZone: centreZone(), hour: "2-digit", minute: "2-digit", hour12: false };
    if (style !== "hm") opts.second = "2-digit";
    if (style === "datetime") { opts.day = "numeric"; opts.month = "short"; opts.year = "numeric"; }
    return new Intl.DateTimeFormat("en-GB", opts).format(at);
  }
  /* The zone's short name for a header, e.g. "Asia/Makassar (GMT+8)". */
  function zoneLabel() {
    const parts = new Intl.DateTimeFormat("en-GB", { timeZone: centreZone(), timeZoneName: "short" })
      .formatToParts(new Date());
    const short = (parts.find((p) => p.type === "timeZoneName") || {}).value || "";
    return short ? `${centreZone()} (${short})` : centreZone();
  }

  /* A panel shows data, or says plainly why it cannot (503: which component is not wired). */
  function unavailable(panel, err) {
    const box = panel.querySelector(".panel-status");
    if (!box) return;
    if (!err) { box.textContent = ""; box.hidden = true; panel.classList.remove("unavailable"); return; }
    panel.classList.add("unavailable");
    box.hidden = false;
    // 503: the server says what is missing and why (not wired, not started yet, its Asterisk unreachable)
    box.textContent = err.status === 503 ? `Not available: ${err.message}` : `Error: ${err.message}`;
  }

  /* A logged-in user whose role may not use this page: say so and offer the way back (as the server's
     403 page does when the page is opened with a session). */
  function forbidden(user, allowedRoles) {
    document.getElementById("login").hidden = true;
    document.getElementById("app").hidden = true;
    const back = user.role === "operator" ? ["/console", "the operator console"] : ["/wallboard", "the wallboard"];
    const box = el("section", { id: "forbidden", class: "panel" }, el("h2", { text: "403: not allowed" }),
      el("p", { id: "forbidden-msg", text: `You are logged in as ${user.role}: this page is for `
        + `${allowedRoles.join(" and ")} only. Ask a supervisor if you need it.` }),
      el("p", {}, el("a", { id: "forbidden-back", href: back[0], text: `Back to ${back[1]}` })));
    document.body.append(box);
  }

  /* Log-in form handling shared by both pages; calls start(user) once logged in. */
  function setupLogin(allowedRoles, start) {
    const loginBox = document.getElementById("login");
    const app = document.getElementById("app");
    const form = document.getElementById("login-form");
    const msg = document.getElementById("login-msg");
    const show = (user) => {
      if (!allowedRoles.includes(user.role)) {
        forbidden(user, allowedRoles);
        return;
      }
      loginBox.hidden = true;
      app.hidden = false;
      document.getElementById("who").textContent = `${user.name} (${user.role})`;
      const zone = document.getElementById("centre-zone");
      if (zone) zone.textContent = `times: ${zoneLabel()}`;
      start(user);
    };
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      msg.textContent = "";
      try {
        show(await login(form.elements.name.value, form.elements.password.value));
        form.reset();
      } catch (e) {
        msg.textContent = e.message;
      }
    });
    document.getElementById("logout").addEventListener("click", async () => {
      await logout();
      window.location.reload();
    });
    resume().then((user) => { if (user) show(user); else loginBox.hidden = false; });
  }

  return { api, stream, el, duration, unavailable, setupLogin, say, when, zoneLabel, STATE_LABELS,
    me: () => me };
})();
