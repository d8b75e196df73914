/* Wallboard panel: open reports per agency (the backlog) and overdue hand-offs, with who was told and
   when. Its own file, so the wallboard's own script stays as it is; it refreshes on the live stream's
   agency messages and every 30 s. */
"use strict";

(() => {
  const { api, el } = Siaga;
  const panel = () => document.getElementById("panel-agencies");

  async function refresh() {
    if (!panel() || document.getElementById("app").hidden) return;
    try {
      const [rows, overdue] = await Promise.all([api("GET", "/api/agency/backlog"), api("GET", "/api/agency/overdue")]);
      Siaga.unavailable(panel(), null);
      document.getElementById("agency-backlog").replaceChildren(...rows.map((r) => el("tr", { "data-agency": r.agency_id },
        el("td", {}, r.agency_name), el("td", { class: "open" }, String(r.open)),
        el("td", { class: r.overdue ? "late" : "" }, String(r.overdue)))));
      const late = overdue.filter((o) => o.still_open);
      document.getElementById("agency-overdue").replaceChildren(...late.map((o) => el("li", { "data-report": String(o.report_id) },
        `#${o.report_id} ${o.agency_name}: not ${o.stage === "acknowledge" ? "acknowledged" : "done"} by ${Siaga.when(o.due_at)}`
        + ` — escalated ${Siaga.when(o.escalated_at)} to ${o.notified.join(", ") || "nobody on duty"}`)));
    } catch (e) {
      Siaga.unavailable(panel(), e);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    setInterval(refresh, 30000);
    const app = document.getElementById("app");
    new MutationObserver(() => refresh()).observe(app, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
