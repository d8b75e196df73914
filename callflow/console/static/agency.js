/* siaga112 agency desk: the open reports handed to this account's agency; acknowledge, notes,
   en route / on scene, done with what was done. Times come from the engine's clock, never this page. */
"use strict";

(() => {
  const { api, el } = Siaga;
  const POLL_MS = 5000;
  const list = () => document.getElementById("reports");
  const panel = () => document.getElementById("panel-reports");
  const msg = (text) => { document.getElementById("action-msg").textContent = text; };
  const when = (iso) => Siaga.when(iso, "datetime");

  async function act(id, path, body, done) {
    msg("");
    try {
      await api("POST", `/api/agency/reports/${id}/${path}`, body);
      msg(done);
    } catch (e) {
      msg(`Report #${id}: ${e.message}`);
    }
    await refresh();
  }

  function render(r) {
    const late = r.overdue.length ? el("span", { class: "late", text: ` OVERDUE: ${r.overdue.join(", ")}` }) : "";
    const box = el("div", { class: `report${r.overdue.length ? " overdue" : ""}`, id: `report-${r.id}`,
      "data-id": String(r.id) },
      el("h3", {}, `#${r.id} ${r.category_label} — ${r.district}`, late),
      el("div", {}, `${r.address || "(no address)"} · ${r.notes || ""}`),
      r.caller_number ? el("div", { class: "caller" }, `caller ${r.caller_number}`) : "",
      el("div", { class: "times" },
        `handed ${when(r.handed_at)} · acknowledge by ${when(r.acknowledge_due)} · done by ${when(r.done_due)}`),
      el("div", { class: "times state", text:
        `acknowledged ${when(r.acknowledged_at)} · en route ${when(r.en_route_at)} · on scene ${when(r.on_scene_at)}` }),
      el("ul", { class: "plain progress" }, ...r.progress.map((n) => el("li", {}, `${when(n.at)} ${n.by}: ${n.text}`))));
    const ack = el("button", { class: "ack", type: "button" }, "Acknowledge");
    ack.disabled = Boolean(r.acknowledged_at);
    ack.addEventListener("click", () => act(r.id, "acknowledge", undefined, `#${r.id} acknowledged`));
    const enRoute = el("button", { class: "en-route step", type: "button" }, "En route");
    enRoute.disabled = Boolean(r.en_route_at || r.on_scene_at);
    enRoute.addEventListener("click", () => act(r.id, "step", { state: "en_route" }, `#${r.id} en route`));
    const onScene = el("button", { class: "on-scene step", type: "button" }, "On scene");
    onScene.disabled = Boolean(r.on_scene_at);
    onScene.addEventListener("click", () => act(r.id, "step", { state: "on_scene" }, `#${r.id} on scene`));
    const note = el("input", { class: "note-text", placeholder: "progress note / what was done", maxlength: "2000" });
    const addNote = el("button", { class: "add-note", type: "button" }, "Add note");
    addNote.addEventListener("click", () => {
      if (note.value.trim()) act(r.id, "notes", { text: note.value.trim() }, `#${r.id} note added`);
    });
    const done = el("button", { class: "done ready", type: "button" }, "Done");
    done.addEventListener("click", () => {
      if (!note.value.trim()) { msg(`Report #${r.id}: write what was done in the note box first`); return; }
      act(r.id, "done", { what: note.value.trim() }, `#${r.id} done`);
    });
    box.append(el("div", { class: "actions" }, ack, enRoute, onScene, note, addNote, done));
    return box;
  }

  let typing = false;
  async function refresh() {
    if (typing) return; // never wipe a note being written
    try {
      const reports = await api("GET", "/api/agency/reports");
      Siaga.unavailable(panel(), null);
      document.getElementById("report-count").textContent = String(reports.length);
      list().replaceChildren(...reports.map(render));
      const link = document.getElementById("link");
      link.textContent = "live";
      link.classList.add("live");
    } catch (e) {
      Siaga.unavailable(panel(), e);
      document.getElementById("link").textContent = "reconnecting";
    }
  }

  Siaga.setupLogin(["agency"], (user) => {
    document.getElementById("agency-name").textContent = user.agency_id || "your agency";
    document.addEventListener("focusin", (ev) => { if (ev.target.classList.contains("note-text")) typing = true; });
    document.addEventListener("focusout", (ev) => { if (ev.target.classList.contains("note-text")) typing = false; });
    refresh();
    setInterval(refresh, POLL_MS);
  });
})();
