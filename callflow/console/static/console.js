/* Operator console: own state, screen pop from the live stream, incident form, callbacks. */
"use strict";

(() => {
  const { api, stream, el, duration, unavailable, setupLogin } = Siaga;
  const $ = (id) => document.getElementById(id);
  let me = null;
  let catalog = null;
  const calls = new Map(); // linkedid -> what the stream told about the call so far (display only)
  let current = null;      // linkedid on this operator's screen

  function callFor(m) {
    if (!calls.has(m.linkedid)) calls.set(m.linkedid, { ivr: [], caller: m.caller, name: m.caller_name });
    const c = calls.get(m.linkedid);
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
    $("pop-waited").textContent = c.waited === undefined ? "–" : duration(c.waited);
    $("pop-queue").textContent = [c.queue, c.cls].filter(Boolean).join(" / ");
    $("pop-ivr").textContent = ivrText(c);
  }

  async function loadHistory(number) {
    $("pop-calls").replaceChildren();
    $("pop-incidents").replaceChildren();
    if (!number) return;
    try {
      const list = await api("GET", `/api/calls/by-number/${encodeURIComponent(number)}?days=30`);
      unavailable($("panel-history"), null);
      $("pop-calls").replaceChildren(...(list.length ? list.map((r) => el("li", {
        text: `${new Date(r.arrival).toLocaleString()} — ${r.outcome}${r.operator ? " (" + r.operator + ")" : ""}` }))
        : [el("li", { text: "no earlier calls" })]));
    } catch (e) { unavailable($("panel-history"), e); }
    try {
      const list = await api("GET", `/api/incidents?caller_number=${encodeURIComponent(number)}&days=30`);
      unavailable($("panel-history-incidents"), null);
      $("pop-incidents").replaceChildren(...(list.length ? list.map((i) => el("li", {
        text: `${new Date(i.created_at).toLocaleString()} — ${i.category} (${i.status})` }))
        : [el("li", { text: "no earlier incidents" })]));
    } catch (e) { unavailable($("panel-history-incidents"), e); }
  }

  function onMessage(m) {
    if (m.type.startsWith("queue.") || m.type === "gap") loadQueues();
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
      if (c.joinedAt) c.waited = (Date.parse(m.at) - Date.parse(c.joinedAt)) / 1000;
      if (current !== m.linkedid) { current = m.linkedid; loadHistory(c.caller); prefill(c); }
    } else if (m.type === "agent.connect") {
      c.state = "connected";
      c.waited = m.hold_time;
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
      catch (e) { unavailable($("panel-incidents"), e); }
    });
    const unit = el("input", { placeholder: "unit", maxlength: "80" });
    const send = el("button", { type: "button", text: "Dispatch" });
    send.addEventListener("click", async () => {
      try { await api("POST", `/api/incidents/${i.id}/dispatch`, { unit: unit.value }); loadIncidents(); }
      catch (e) { unavailable($("panel-incidents"), e); }
    });
    return el("tr", {}, el("td", { text: i.category }), el("td", { text: i.district }), el("td", {}, status),
      el("td", {}, el("div", { class: "row" }, unit, send), el("div", { class: "sub", text: i.dispatched_to.join(", ") })));
  }

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
    loadQueues(); loadIncidents(); loadCallbacks();
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
