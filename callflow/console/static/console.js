/* Operator console: own state, screen pop from the live stream, incident form, callbacks. */
"use strict";

(() => {
  const { api, stream, el, duration, unavailable, setupLogin } = Siaga;
  const $ = (id) => document.getElementById(id);
  let me = null;
  let catalog = null;
  const calls = new Map(); // linkedid -> what the stream told about the call so far (display only)
  let current = null;      // linkedid on this operator's screen
  let units = [];          // the agency units a dispatch can go to (GET /api/units)

  function callFor(m) {
    if (!calls.has(m.linkedid)) calls.set(m.linkedid, { ivr: [], caller: m.caller, name: m.caller_name });
    const c = calls.get(m.linkedid);
    if (m.at && (!c.firstAt || Date.parse(m.at) < Date.parse(c.firstAt))) c.firstAt = m.at; // first seen
    if (calls.size > 200) calls.delete(calls.keys().next().value);
    return c;
  }

  async function setState(state, reason) {
    $("state-msg").textContent = "";
    try {
      const s = await api("POST", "/api/operators/me/state", { state, reason: reason || "" });
      unavailable($("panel-state"), null);
      $("state-msg").textContent = `Now ${s.state}${s.reason ? " (" + s.reason + ")" : ""}`;
    } catch (e) {
      unavailable($("panel-state"), e);
    }
  }

  async function loadCatalog() {
    catalog = await api("GET", "/api/catalog");
    for (const c of catalog.categories) {
      $(c.emergency ? "cat-emergency" : "cat-nonemergency")
        .append(el("option", { value: c.id, text: `${c.label_id} — ${c.label_en}` }));
    }
    for (const d of catalog.districts) $("inc-district").append(el("option", { value: d.id, text: d.name }));
  }

  async function loadQueues() {
    try {
      const board = await api("GET", "/api/queues");
      unavailable($("panel-queues"), null);
      for (const cls of ["emergency", "nonemergency"]) {
        const q = board.queues.find((x) => x.call_class === cls);
        $(`q-${cls}`).textContent = q ? String(q.waiting) : "–";
      }
    } catch (e) {
      unavailable($("panel-queues"), e);
    }
  }

  function ivrText(c) {
    const parts = c.ivr.map((s) => [s.step, s.node, s.digit && `key ${s.digit}`, s.action].filter(Boolean).join(" "));
    const route = c.route ? `route ${c.route}` : "";
    const choice = [c.cls, c.category].filter(Boolean).join(" / ");
    return [parts.join(" → "), route, choice && `choice: ${choice}`].filter(Boolean).join("; ")
      || "not seen by this page (direct to queue, or before the page connected)";
  }

  function renderPop() {
    if (!current) { $("pop").hidden = true; $("pop-idle").hidden = false; return; }
    const c = calls.get(current);
    $("pop").hidden = false;
    $("pop-idle").hidden = true;
    $("panel-pop").classList.add("pop");
    $("pop-number").textContent = c.caller || "(no number)";
    $("pop-name").textContent = c.name && c.name !== c.caller ? c.name : "";
    $("pop-state").textContent = c.state || "";
    $("pop-waited").textContent = c.waited === undefined ? "–"
      : duration(c.waited) + (c.queueWait === undefined ? "" : ` (${duration(c.queueWait)} in queue)`);
    $("pop-queue").textContent = [c.queue, c.cls].filter(Boolean).join(" / ");
    $("pop-ivr").textContent = ivrText(c);
  }

  async function loadHistory(number) {
    $("pop-calls").replaceChildren();
    $("pop-incidents").replaceChildren();
    if (!number) return;
    try {
      const found = await api("GET", `/api/calls/by-number/${encodeURIComponent(number)}?days=30`);
      const list = found.filter((r) => r.linkedid !== current); // this call, once stored, is not "earlier"
      unavailable($("panel-history"), null);
      $("pop-repeat").textContent = list.length ? `repeat caller: ${list.length} earlier call(s) in 30 days` : "";
      $("pop-calls").replaceChildren(...(list.length ? list.map((r) => el("li", {
        text: `${new Date(r.arrival).toLocaleString()} — ${r.outcome}${r.operator ? " (" + r.operator + ")" : ""}`
          + (r.ivr_path.length ? ` — IVR ${r.ivr_path.join(" → ")}` : "") }))
        : [el("li", { text: "no earlier calls" })]));
    } catch (e) { unavailable($("panel-history"), e); }
    try {
      const list = await api("GET", `/api/incidents?caller_number=${encodeURIComponent(number)}&days=30`);
      unavailable($("panel-history-incidents"), null);
      $("pop-incidents").replaceChildren(...(list.length ? list.map((i) => el("li", {
        text: `${new Date(i.created_at).toLocaleString()} — #${i.id} ${i.category}, ${i.district} (${i.status})` }))
        : [el("li", { text: "no earlier incidents" })]));
    } catch (e) { unavailable($("panel-history-incidents"), e); }
  }

  function onMessage(m) {
    if (m.type.startsWith("queue.") || m.type === "gap") loadQueues();
    if (m.type === "incident.changed" || m.type === "gap") loadIncidents();
    if (m.type === "call.record") {
      const c = current && calls.get(current);
      if (c && c.caller && c.caller === m.caller) loadHistory(c.caller);
      return;
    }
    if (m.type === "incident.changed") return;
    if (!m.linkedid) return;
    const c = callFor(m);
    if (m.type === "queue.join") { c.joinedAt = m.at; c.queue = m.queue; }
    if (m.type === "call.queue_entry") { c.cls = m.class; c.route = m.route; c.category = m.category; }
    if (m.type === "call.ivr") c.ivr.push(m);
    const mine = me && m.operator && m.operator === me.operator_id;
    if (!mine) return;
    if (m.type === "agent.called") {
      c.state = "ringing";
      c.queue = m.queue;
      if (c.firstAt) c.waited = (Date.parse(m.at) - Date.parse(c.firstAt)) / 1000;
      if (current !== m.linkedid) { current = m.linkedid; loadHistory(c.caller); prefill(c); }
    } else if (m.type === "agent.connect") {
      c.state = "connected";
      // since the page first saw the call (the IVR answering it), and the queue's own hold time
      c.waited = c.firstAt ? (Date.parse(m.at) - Date.parse(c.firstAt)) / 1000 : m.hold_time;
      c.queueWait = m.hold_time;
      if (current !== m.linkedid) { current = m.linkedid; loadHistory(c.caller); prefill(c); }
    } else if (m.type === "agent.complete" && current === m.linkedid) {
      c.state = `ended (${m.reason || "hang-up"}), talk ${duration(m.talk_time)}`;
    } else if (m.type === "agent.noanswer" && current === m.linkedid) {
      c.state = "missed (not answered)";
    }
    renderPop();
  }

  function prefill(c) {
    $("inc-number").value = c.caller || "";
    $("inc-linkedid").value = current || "";
  }

  async function loadIncidents() {
    try {
      units = await api("GET", "/api/units");
    } catch (e) { units = []; }
    try {
      const list = await api("GET", "/api/incidents?days=1");
      unavailable($("panel-incidents"), null);
      $("incidents").replaceChildren(...list.map(incidentRow));
    } catch (e) { unavailable($("panel-incidents"), e); }
  }

  function incidentRow(i) {
    const status = el("select", {});
    for (const s of catalog.statuses) {
      const o = el("option", { value: s.id, text: `${s.label_id} / ${s.label_en}` });
      if (s.id === i.status) o.selected = true;
      status.append(o);
    }
    status.addEventListener("change", async () => {
      try { await api("POST", `/api/incidents/${i.id}/status`, { status: status.value }); loadIncidents(); }
      catch (e) {
        if (e.status === 409 || e.status === 422) { status.value = i.status; alertRow(e.message); }
        else unavailable($("panel-incidents"), e);
      }
    });
    // free units, those of the incident's district first
    const unit = el("select", { class: "unit", "aria-label": `unit for incident ${i.id}` });
    unit.append(el("option", { value: "", text: units.length ? "— unit —" : "no units in the registry" }));
    const free = units.filter((u) => !u.busy)
      .sort((a, b) => (a.district === i.district ? 0 : 1) - (b.district === i.district ? 0 : 1));
    for (const u of free) {
      unit.append(el("option", { value: u.id, text: `${u.name} (${u.type}, ${u.district})${u.example_data ? " [example]" : ""}` }));
    }
    const send = el("button", { type: "button", text: "Dispatch" });
    const msg = el("div", { class: "msg" });
    send.addEventListener("click", async () => {
      msg.textContent = "";
      if (!unit.value) { msg.textContent = "unit: choose a unit to dispatch"; return; }
      try { await api("POST", `/api/incidents/${i.id}/dispatch`, { unit: unit.value }); loadIncidents(); }
      catch (e) { if (e.status === 409 || e.status === 422) msg.textContent = e.message; else unavailable($("panel-incidents"), e); }
    });
    status.addEventListener("change", () => { msg.textContent = ""; });
    const sent = el("div", { class: "sub dispatched" }, ...i.dispatches.map((d) => dispatchLine(i, d, msg)));
    return el("tr", { "data-incident": i.id }, el("td", { text: `#${i.id} ${i.category}` }), el("td", { text: i.district }),
      el("td", {}, status),
      el("td", {}, i.status === "done" ? "" : el("div", { class: "row" }, unit, send), sent, msg));
  }

  // a dispatch's steps, forward only; en route and on scene may be skipped (the server stamps the time)
  const STEPS = [["en_route", "En route"], ["on_scene", "On scene"], ["closed", "Close"]];
  const RANK = { dispatched: 0, en_route: 1, on_scene: 2, closed: 3 };

  function dispatchLine(i, d, msg) {
    const times = [["dispatched", d.dispatched_at], ["en route", d.en_route_at], ["on scene", d.on_scene_at],
      ["closed", d.closed_at]].filter(([, at]) => at).map(([what, at]) => `${what} ${new Date(at).toLocaleTimeString()}`);
    const line = el("div", { class: "dispatch", "data-dispatch": d.id },
      el("span", { text: `${d.unit_name} (${d.state})${d.example_data ? " [example]" : ""} — ${times.join(", ")}` }));
    if (d.state === "closed" || i.status === "done") return line;
    for (const [state, label] of STEPS.filter(([s]) => RANK[s] > RANK[d.state])) {
      const b = el("button", { type: "button", class: "step", "data-step": state, text: label,
        "aria-label": `${label}: ${d.unit_name}, incident ${i.id}` });
      b.addEventListener("click", async () => {
        msg.textContent = "";
        try { await api("POST", `/api/incidents/${i.id}/dispatches/${d.id}/step`, { state }); loadIncidents(); }
        catch (e) {
          if (e.status === 404 || e.status === 409 || e.status === 422) msg.textContent = e.message;
          else unavailable($("panel-incidents"), e);
        }
      });
      line.append(" ", b);
    }
    return line;
  }

  async function probeOperators() {
    // says at once (not only on the first click) when operator state is not wired into this engine
    try { await api("GET", "/api/operators"); unavailable($("panel-state"), null); }
    catch (e) { unavailable($("panel-state"), e); }
  }

  function alertRow(text) { $("incidents-msg").textContent = text; }

  async function loadCallbacks() {
    try {
      const list = await api("GET", "/api/callbacks?open_only=true");
      unavailable($("panel-callbacks"), null);
      $("callbacks").replaceChildren(...(list.length ? list.map((c) => el("li", {
        text: `${c.number} — ${c.reason} (${c.status}, since ${new Date(c.created_at).toLocaleTimeString()})` }))
        : [el("li", { text: "no open callbacks" })]));
    } catch (e) { unavailable($("panel-callbacks"), e); }
  }

  function setupForm() {
    const form = $("incident-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("incident-msg").textContent = "";
      const f = form.elements;
      const body = { category: f.category.value, district: f.district.value, notes: f.notes.value,
        address: f.address.value };
      if (f.caller_number.value) body.caller_number = f.caller_number.value;
      if (f.linkedid.value) body.linkedid = f.linkedid.value;
      try {
        const inc = await api("POST", "/api/incidents", body);
        unavailable($("panel-incident"), null);
        $("incident-msg").textContent = `Incident ${inc.id} created`;
        form.reset();
        loadIncidents();
      } catch (e) {
        if (e.status === 422) $("incident-msg").textContent = e.message;
        else unavailable($("panel-incident"), e);
      }
    });
    $("btn-ready").addEventListener("click", () => setState("ready"));
    $("btn-wrapup").addEventListener("click", () => setState("wrapup"));
    $("btn-pause").addEventListener("click", () => setState("paused", $("pause-reason").value));
  }

  setupLogin(["operator", "supervisor"], async (user) => {
    me = user;
    setupForm();
    await loadCatalog();
    loadQueues(); loadIncidents(); loadCallbacks(); probeOperators();
    stream(onMessage, (state) => {
      $("link").textContent = state;
      $("link").classList.toggle("live", state === "live");
    });
    setInterval(() => {
      const c = current && calls.get(current);
      if (c && c.state === "ringing" && c.waited !== undefined) { c.waited += 1; renderPop(); }
    }, 1000);
  });
})();
