/* Operator console: own state, screen pop from the live stream, incident form, callbacks. */
"use strict";

(() => {
  const { api, stream, el, duration, unavailable, setupLogin, say, STATE_LABELS } = Siaga;
  const $ = (id) => document.getElementById(id);
  let me = null;
  let catalog = null;
  const calls = new Map(); // linkedid -> what the stream told about the call so far (display only)
  let current = null;      // linkedid on this operator's screen
  let units = [];          // the agency units a dispatch can go to (GET /api/units)
  let mine = null;         // this operator's own state (GET /api/operators), and when it was read
  let mineAt = 0;

  function callFor(m) {
    if (!calls.has(m.linkedid)) calls.set(m.linkedid, { ivr: [], caller: m.caller, name: m.caller_name });
    const c = calls.get(m.linkedid);
    if (m.at && (!c.firstAt || Date.parse(m.at) < Date.parse(c.firstAt))) c.firstAt = m.at; // first seen
    if (calls.size > 200) calls.delete(calls.keys().next().value);
    return c;
  }

  async function setState(state, reason) {
    say($("state-msg"), "");
    try {
      const s = await api("POST", "/api/operators/me/state", { state, reason: reason || "" });
      unavailable($("panel-state"), null);
      showMine(s);
      say($("state-msg"), `Now ${STATE_LABELS[s.state] || s.state}${s.reason ? " (" + s.reason + ")" : ""}`, "ok");
    } catch (e) {
      if (e.status === 404 || e.status === 422) say($("state-msg"), e.message, "error");
      else unavailable($("panel-state"), e);
    }
  }

  function myId() { return me.operator_id || me.name; }

  /* "My state": read when the page loads (and after a reload), again whenever the stream says this
     operator's queue membership or calls changed; the time in state ticks on the page. */
  async function loadMyState() {
    try {
      const list = await api("GET", "/api/operators");
      unavailable($("panel-state"), null);
      const found = list.find((o) => o.operator === myId());
      if (found) showMine(found);
      else { mine = null; renderMine(); say($("state-msg"), `operator ${myId()} is not in the site's operator list: ask a supervisor`, "error"); }
    } catch (e) { unavailable($("panel-state"), e); }
  }

  function showMine(s) { mine = s; mineAt = Date.now(); renderMine(); }

  function renderMine() {
    const badge = $("my-state");
    if (!mine) { badge.textContent = "unknown"; badge.className = "state-badge"; $("my-state-time").textContent = ""; return; }
    badge.textContent = (STATE_LABELS[mine.state] || mine.state) + (mine.reason ? ` (${mine.reason})` : "");
    badge.className = `state-badge state-${mine.state}`;
    badge.dataset.state = mine.state;
    $("my-state-time").textContent = `for ${duration(mine.seconds_in_state + (Date.now() - mineAt) / 1000)}`;
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

  // menu names as callers hear them: root is the first menu, *_en its English variant
  function menuName(node) {
    const english = node.endsWith("_en");
    const base = english ? node.slice(0, -3) : node;
    const name = base === "root" ? "main menu" : `${base.replace(/_/g, " ")} menu`;
    return english ? `${name} (English)` : name;
  }

  function categoryLabel(id) {
    const c = catalog && catalog.categories.find((x) => x.id === id);
    const text = c ? `${c.label_en} (${c.label_id})` : id.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function ivrText(c) {
    const words = [];
    for (const s of c.ivr) {
      if (s.step === "digit") words.push(`pressed ${s.digit} in the ${menuName(s.node)}`);
      else if (s.step === "timeout") words.push(`pressed nothing in the ${menuName(s.node)}`);
      else if (s.step === "invalid") words.push(`pressed ${s.digit || "a wrong key"} (not on the ${menuName(s.node)})`);
      else if (s.step === "decision") {
        const to = s.action === "nonemergency" ? `complaint queue${s.category ? ": " + categoryLabel(s.category) : ""}`
          : s.action === "emergency" ? "emergency queue" : s.action;
        words.push(`sent to the ${to}`);
      }
    }
    if (!words.length && c.cls) {
      words.push(c.route === "failsafe" ? "IVR failed: sent to the emergency queue (fail-safe)"
        : `went straight to the ${c.cls === "emergency" ? "emergency" : "complaint"} queue`);
    }
    return words.length ? `${words.join(", then ")}.` : "not seen by this page (the call came before the page connected)";
  }

  // a wait as the call record states it: tenths of a second once answered, whole seconds while it runs
  function seconds(s, exact) {
    if (s >= 60) return duration(s);
    return exact ? `${s.toFixed(1)} s` : `${Math.floor(s)} s`;
  }

  const OUTCOMES = { answered: "answered", abandoned_in_queue: "hung up waiting in the queue",
    abandoned_in_ivr: "hung up in the IVR", short_abandon: "hung up at once (short abandon)" };

  function ivrPathText(path) {
    // the record's IVR path: "node:digit" per key pressed
    return path.map((step) => {
      const [node, digit] = step.split(":");
      return digit ? `pressed ${digit} in the ${menuName(node)}` : menuName(node);
    }).join(", then ");
  }

  function queueText(c) {
    const cls = c.cls || c.queue;
    if (!cls) return "";
    const name = cls === "emergency" ? "Emergency" : cls === "nonemergency" ? "Complaint (non-emergency)" : cls;
    return c.queue && c.queue !== cls ? `${name} (queue ${c.queue})` : name;
  }

  function callbackText(c) {
    if (!c.callback) return "";
    const hhmm = c.callback.at ? Siaga.when(c.callback.at, "hm") : "?";
    const waited = typeof c.callback.waited === "number" ? `, which waited ${Math.round(c.callback.waited)} s` : "";
    return `callback for the call of ${hhmm}${waited}`;
  }

  function renderPop() {
    if (!current) { $("pop").hidden = true; $("pop-idle").hidden = false; return; }
    const c = calls.get(current);
    $("pop").hidden = false;
    $("pop-idle").hidden = true;
    $("panel-pop").classList.add("pop");
    $("pop-number").textContent = c.caller || "(no number)";
    $("pop-name").textContent = c.name && c.name !== c.caller ? c.name : "";
    $("pop-state").textContent = [callbackText(c), c.state].filter(Boolean).join(" — ");
    const waited = c.waited !== undefined ? c.waited
      : c.arrival && c.state === "ringing" ? (Date.now() - c.ringingLocal) / 1000 + c.waitedAtRing : undefined;
    $("pop-waited").textContent = waited === undefined ? "–"
      : seconds(waited, c.waited !== undefined) + (c.queueWait === undefined ? "" : ` (${c.queueWait} s in queue)`);
    $("pop-queue").textContent = queueText(c);
    $("pop-ivr").textContent = ivrText(c);
    const timer = $("pop-timer");
    if (c.connectedLocal !== undefined) {
      const end = c.endedLocal !== undefined ? c.endedLocal : Date.now();
      timer.textContent = duration((end - c.connectedLocal) / 1000);
      timer.classList.toggle("live", c.endedLocal === undefined);
    } else timer.textContent = "–";
    // silent caller (pressed 5 twice in the IVR): ask yes/no questions, the caller answers with keys
    const answers = (c.keys || []).map((k) => (k === "1" ? "1 = YES" : k === "2" ? "2 = NO" : k));
    $("pop-silent").textContent = c.silent === "silent_caller"
      ? "SILENT CALLER (pressed 5 twice): ask yes/no questions; 1 = yes, 2 = no. Answers: "
        + (answers.length ? answers.join(", ") : "none yet")
      : c.silent === "silent" ? "silent in the IVR (did not press 5 twice)" : "";
    $("pop-abuse").textContent = c.abuse ? "number flagged repeat_abuse by a supervisor (still answered)" : "";
  }

  async function loadHistory(number) {
    $("pop-calls").replaceChildren();
    $("pop-incidents").replaceChildren();
    $("pop-pranks").textContent = "";
    $("nature").value = "";
    $("nature-status").textContent = "";
    if (!number) return;
    try {
      const found = await api("GET", `/api/calls/by-number/${encodeURIComponent(number)}?days=30`);
      const list = found.filter((r) => r.linkedid !== current); // this call, once stored, is not "earlier"
      unavailable($("panel-history"), null);
      $("pop-repeat").textContent = list.length ? `repeat caller: ${list.length} earlier call(s) in 30 days` : "";
      $("pop-calls").replaceChildren(...(list.length ? list.map((r) => el("li", {
        text: `${Siaga.when(r.arrival, "datetime")} — ${OUTCOMES[r.outcome] || r.outcome.replace(/_/g, " ")}`
          + `${r.operator ? " (" + r.operator + ")" : ""}` + (r.ivr_path.length ? ` — ${ivrPathText(r.ivr_path)}` : "") }))
        : [el("li", { text: "no earlier calls" })]));
    } catch (e) { unavailable($("panel-history"), e); }
    try {
      const p = await api("GET", `/api/calls/by-number/${encodeURIComponent(number)}/pranks`);
      $("pop-pranks").textContent = p.last_30d
        ? `tagged prank: ${p.last_24h} in 24 h, ${p.last_30d} in 30 days` : "";
    } catch (e) { $("pop-pranks").textContent = ""; }
    try {
      const list = await api("GET", `/api/incidents?caller_number=${encodeURIComponent(number)}&days=30`);
      unavailable($("panel-history-incidents"), null);
      $("pop-incidents").replaceChildren(...(list.length ? list.map((i) => el("li", {
        text: `${Siaga.when(i.created_at, "datetime")} — #${i.id} ${i.category}, ${i.district} (${i.status})` }))
        : [el("li", { text: "no earlier incidents" })]));
    } catch (e) { unavailable($("panel-history-incidents"), e); }
  }

  $("nature-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const nature = $("nature").value;
    if (!current || !nature) return;
    const c = calls.get(current);
    try {
      const t = await api("POST", `/api/calls/${encodeURIComponent(current)}/nature`,
        { nature, caller_number: (c && c.caller) || "" });
      $("nature-status").textContent = `tagged ${t.nature}`;
    } catch (e) { $("nature-status").textContent = String(e.message || e); }
  });

  function onMessage(m) {
    if (m.type.startsWith("queue.") || m.type === "gap") loadQueues();
    if (m.type === "incident.changed" || m.type === "gap") loadIncidents();
    if (m.type === "call.record" || m.type === "callback.changed" || m.type === "gap") loadCallbacks();
    if (m.type === "gap" || ((m.type.startsWith("member.") || m.type.startsWith("agent."))
      && m.operator === myId())) loadMyState();
    if (m.type === "call.record") {
      const c = current && calls.get(current);
      if (c && c.caller && c.caller === m.caller) loadHistory(c.caller);
      // the stored record ends the call on the pop too, should the agent's own completion event have been
      // missed (a stream reconnect): a pop never stays "connected" after the call is over
      if (c && m.linkedid === current && (c.state === "connected" || c.state === "ringing")) {
        c.state = c.state === "ringing" ? "missed (not answered)" : "ended";
        if (c.endedLocal === undefined) c.endedLocal = Date.now();
        renderPop();
      }
      return;
    }
    if (m.type === "incident.changed" || m.type === "callback.changed") return;
    if (!m.linkedid) return;
    const c = callFor(m);
    if (m.type === "queue.join") { c.joinedAt = m.at; c.queue = m.queue; }
    if (m.type === "call.queue_entry") {
      c.cls = m.class; c.route = m.route; if (m.category) c.category = m.category;
      c.abuse = m.abuse === "1";
      if (current === m.linkedid) prefillCategory(c);
    }
    if (m.type === "call.ivr") {
      c.ivr.push(m);
      if (m.step === "decision" && m.category) { c.category = m.category; if (current === m.linkedid) prefillCategory(c); }
    }
    if (m.type === "call.callback") { // the engine's callback: the citizen's number and the call it follows up
      if (m.caller) c.caller = m.caller;
      c.callback = { at: m.original_arrival, waited: m.original_waited_s, original: m.original };
    }
    if (m.type === "call.silent") { c.silent = m.status; c.keys = []; }
    if (m.type === "call.key" && c.silent === "silent_caller") {
      c.keys.push(m.digit);
      if (current === m.linkedid) renderPop();
    }
    if (m.arrival) c.arrival = m.arrival;
    const forMe = me && m.operator && m.operator === myId();
    if (!forMe) return;
    if (m.type === "agent.called") {
      c.state = "ringing";
      c.queue = m.queue;
      // waited: from the call's arrival at the PBX (the record's answer time starts there), ticking
      c.waitedAtRing = c.arrival ? (Date.parse(m.at) - Date.parse(c.arrival)) / 1000 : 0;
      c.ringingLocal = Date.now();
      if (current !== m.linkedid) { current = m.linkedid; loadHistory(c.caller); prefill(c); }
    } else if (m.type === "agent.connect") {
      c.state = "connected";
      // arrival at the PBX -> answer: the stored record's answer time; the queue's own hold time apart
      c.waited = c.arrival ? (Date.parse(m.at) - Date.parse(c.arrival)) / 1000 : m.hold_time;
      c.queueWait = m.hold_time;
      c.connectedLocal = Date.now();
      c.endedLocal = undefined;
      if (current !== m.linkedid) { current = m.linkedid; loadHistory(c.caller); prefill(c); }
    } else if (m.type === "agent.complete" && current === m.linkedid) {
      c.state = `ended (${m.reason === "caller" ? "the caller hung up" : m.reason === "agent" ? "you hung up" : m.reason || "hang-up"})`;
      c.endedLocal = Date.now();
      if (c.connectedLocal !== undefined && m.talk_time !== undefined) c.endedLocal = c.connectedLocal + m.talk_time * 1000;
    } else if (m.type === "agent.noanswer" && current === m.linkedid) {
      c.state = "missed (not answered)";
    }
    renderPop();
  }

  function prefill(c) {
    delete $("inc-category").dataset.touched; // a new call: the IVR's choice may fill the form again
    $("inc-category-hint").textContent = "";
    say($("incident-msg"), "");
    $("inc-number").value = c.caller || "";
    $("inc-linkedid").value = current || "";
    prefillCategory(c);
  }

  // the complaint type the caller chose in the IVR; the operator can still change it
  function prefillCategory(c) {
    const select = $("inc-category");
    if (c.category && [...select.options].some((o) => o.value === c.category) && !select.dataset.touched) {
      select.value = c.category;
      $("inc-category-hint").textContent = "chosen by the caller in the IVR";
    }
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

  function districtName(id) {
    const d = catalog.districts.find((x) => x.id === id);
    return d ? d.name : id;
  }

  function incidentRow(i) {
    const status = el("select", { class: "status", "aria-label": `status of incident ${i.id}` });
    for (const s of catalog.statuses) {
      const o = el("option", { value: s.id, text: `${s.label_en} (${s.label_id})` });
      if (s.id === i.status) o.selected = true;
      status.append(o);
    }
    status.addEventListener("change", async () => {
      try {
        await api("POST", `/api/incidents/${i.id}/status`, { status: status.value });
        alertRow(""); loadIncidents();
      } catch (e) {
        if (e.status === 409 || e.status === 422) { status.value = i.status; alertRow(e.message, "error"); }
        else unavailable($("panel-incidents"), e);
      }
    });
    // free units that answer this category: the engine's suggestion first (chosen), then the
    // incident's district, then the rest
    const unit = el("select", { class: "unit", "aria-label": `unit for incident ${i.id}` });
    const free = units.filter((u) => !u.busy && u.serves.includes(i.category))
      .sort((a, b) => (a.id === i.suggested_unit ? 0 : 1) - (b.id === i.suggested_unit ? 0 : 1)
        || (a.district === i.district ? 0 : 1) - (b.district === i.district ? 0 : 1) || a.name.localeCompare(b.name));
    unit.append(el("option", { value: "", text: !units.length ? "no units in the registry"
      : free.length ? "— unit —" : `no free unit for ${categoryLabel(i.category)}` }));
    for (const u of free) {
      const o = el("option", { value: u.id, text: `${u.id === i.suggested_unit ? "★ suggested: " : ""}${u.name} `
        + `(${u.type.replace(/_/g, " ")}, ${districtName(u.district)})${u.example_data ? " [example]" : ""}` });
      if (u.id === i.suggested_unit) o.selected = true;
      unit.append(o);
    }
    const send = el("button", { type: "button", text: "Dispatch" });
    const msg = el("div", { class: "msg" });
    send.addEventListener("click", async () => {
      msg.textContent = "";
      if (!unit.value) { say(msg, "unit: choose a unit to dispatch", "error"); return; }
      try { await api("POST", `/api/incidents/${i.id}/dispatch`, { unit: unit.value }); alertRow(""); loadIncidents(); }
      catch (e) { if (e.status === 409 || e.status === 422) say(msg, e.message, "error"); else unavailable($("panel-incidents"), e); }
    });
    status.addEventListener("change", () => { msg.textContent = ""; });
    const sent = el("div", { class: "sub dispatched" }, ...i.dispatches.map((d) => dispatchLine(i, d, msg)));
    return el("tr", { "data-incident": i.id }, el("td", { text: `#${i.id} ${categoryLabel(i.category)}` }),
      el("td", { text: districtName(i.district) }),
      el("td", {}, status),
      el("td", {}, i.status === "done" ? "" : el("div", { class: "row" }, unit, send), sent, msg));
  }

  // a dispatch's steps, forward only; en route and on scene may be skipped (the server stamps the time)
  const STEPS = [["en_route", "En route"], ["on_scene", "On scene"], ["closed", "Close"]];
  const RANK = { dispatched: 0, en_route: 1, on_scene: 2, closed: 3 };

  function dispatchLine(i, d, msg) {
    const times = [["dispatched", d.dispatched_at], ["en route", d.en_route_at], ["on scene", d.on_scene_at],
      ["closed", d.closed_at]].filter(([, at]) => at).map(([what, at]) => `${what} ${Siaga.when(at)}`);
    const line = el("div", { class: "dispatch", "data-dispatch": d.id },
      el("span", { text: `${d.unit_name} (${d.state.replace(/_/g, " ")})${d.example_data ? " [example]" : ""} — ${times.join(", ")}` }));
    if (d.state === "closed" || i.status === "done") return line;
    for (const [state, label] of STEPS.filter(([s]) => RANK[s] > RANK[d.state])) {
      const b = el("button", { type: "button", class: "step", "data-step": state, text: label,
        "aria-label": `${label}: ${d.unit_name}, incident ${i.id}` });
      b.addEventListener("click", async () => {
        msg.textContent = "";
        try { await api("POST", `/api/incidents/${i.id}/dispatches/${d.id}/step`, { state }); alertRow(""); loadIncidents(); }
        catch (e) {
          if (e.status === 404 || e.status === 409 || e.status === 422) say(msg, e.message, "error");
          else unavailable($("panel-incidents"), e);
        }
      });
      line.append(" ", b);
    }
    return line;
  }

  function alertRow(text, kind) { say($("incidents-msg"), text, kind); }

  async function loadCallbacks() {
    try {
      const list = await api("GET", "/api/callbacks?open_only=true");
      unavailable($("panel-callbacks"), null);
      $("callbacks").replaceChildren(...(list.length ? list.map((c) => el("li", { "data-callback": c.id,
        text: `${c.number} — ${c.reason.replace(/_/g, " ")} (${c.status.replace(/_/g, " ")}, since ${Siaga.when(c.created_at)})` }))
        : [el("li", { text: "no open callbacks" })]));
    } catch (e) { unavailable($("panel-callbacks"), e); }
  }

  function setupForm() {
    const form = $("incident-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      say($("incident-msg"), "");
      const f = form.elements;
      const body = { category: f.category.value, district: f.district.value, notes: f.notes.value,
        address: f.address.value };
      if (f.caller_number.value) body.caller_number = f.caller_number.value;
      if (f.linkedid.value) body.linkedid = f.linkedid.value;
      try {
        const inc = await api("POST", "/api/incidents", body);
        unavailable($("panel-incident"), null);
        say($("incident-msg"), `Incident ${inc.id} created`, "ok");
        form.reset();
        delete $("inc-category").dataset.touched;
        $("inc-category-hint").textContent = "";
        loadIncidents();
      } catch (e) {
        if (e.status === 422) say($("incident-msg"), e.message, "error");
        else unavailable($("panel-incident"), e);
      }
    });
    $("btn-ready").addEventListener("click", () => setState("ready"));
    $("btn-wrapup").addEventListener("click", () => setState("wrapup"));
    $("btn-pause").addEventListener("click", () => setState("paused", $("pause-reason").value));
    $("inc-category").addEventListener("change", () => {
      $("inc-category").dataset.touched = "1"; $("inc-category-hint").textContent = "";
    });
  }

  setupLogin(["operator", "supervisor"], async (user) => {
    me = user;
    setupForm();
    await loadCatalog();
    loadQueues(); loadIncidents(); loadCallbacks(); loadMyState();
    stream(onMessage, (state) => {
      $("link").textContent = state;
      $("link").classList.toggle("live", state === "live");
    });
    setInterval(() => { if (current) renderPop(); renderMine(); }, 1000); // waiting/talk timers, time in state
  });
})();
