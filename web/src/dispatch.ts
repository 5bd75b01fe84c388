// The dispatch board (指挥调度): the map, the incident queue with ageing timers, the units,
// and the selected incident — recommendations with ETA, assignment, statuses, warnings
// about duplicates and prior history, the timeline. Everything follows the live stream.

import { ApiError, call, can, get, post, query } from "./api";
import type { Board } from "./board";
import { serverNow } from "./clock";
import { age, fill, h, when } from "./dom";
import { t, tOr } from "./i18n";
import { CityMap, PRIORITY_COLOURS, SITE_COLOURS, STATUS_COLOURS } from "./map";
import { codeName, loadCodes, place } from "./names";
import { submitting, toast } from "./ui";
import type { Code, Incident, Recommendation, Site, TimelineEntry, UnitOnBoard } from "./types";

/** How often the sites' heartbeat states are fetched again. */
const SITES_EVERY_MS = 60_000;

const UNIT_STATUSES = ["available", "dispatched", "en_route", "on_scene", "returning", "out_of_service", "off_duty"];

export class DispatchScreen {
  root: HTMLElement;
  map: CityMap | null = null;
  private queueList = h("div", { class: "list", "data-testid": "queue" });
  private unitList = h("div", { class: "list", "data-testid": "units" });
  private detail = h("section", { class: "detail", "data-testid": "detail" });
  private tabs = h("div", { class: "tabs" });
  sites: Site[] = [];
  private layers: Record<string, boolean> = { units: true, incidents: true, sites: true };
  private legend = this.makeLegend();
  private sitesTimer: number | null = null;
  private destroyed = false;
  private unsubscribe: () => void = () => {};
  private tab: "queue" | "units" = "queue";
  private filter: "open" | "waiting" = "open";
  private unitFilter = "";
  private selected: number | null = null;
  private recommendations: Recommendation[] = [];
  private form: IncidentForm | null = null;
  private ticker: number | null = null;
  private types: Code[] = [];
  private sources: Code[] = [];
  private dispositions: Code[] = [];
  private pendingUnits = false;

  constructor(
    private board: Board,
    private styleUrl: string | null,
  ) {
    const mapEl = h("div", { class: "map", "data-testid": "map" });
    this.root = h(
      "div",
      { class: "dispatch" },
      h("aside", { class: "side" }, this.tabs, this.queueList, this.unitList),
      h("div", { class: "map-wrap" }, mapEl, this.legend),
      this.detail,
    );
    requestAnimationFrame(() => {
      this.map = new CityMap(mapEl, {
        styleUrl: this.styleUrl,
        onIncidentClick: (id) => this.select(id),
        onUnitClick: (unit) => this.showUnit(unit),
        onPick: (lat, lon) => this.form?.picked(lat, lon),
      });
      this.map.setUnits(this.board.units.values());
      this.map.setIncidents(this.board.incidents.values());
      this.map.setSites(this.sites);
    });
    void this.loadSites();
    this.unsubscribe = board.onChange((what) => this.changed(what));
    void Promise.all([loadCodes("incident_type"), loadCodes("incident_source"), loadCodes("disposition")]).then(([types, sources, dispositions]) => {
      this.types = types;
      this.sources = sources;
      this.dispositions = dispositions;
      this.renderQueue();
      this.renderDetail();
    });
    this.renderTabs();
    this.renderQueue();
    this.renderUnits();
    this.renderDetail();
    this.ticker = window.setInterval(() => this.tick(), 1000);
  }

  destroy() {
    this.unsubscribe();
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.sitesTimer !== null) clearTimeout(this.sitesTimer);
    this.sitesTimer = null;
    this.destroyed = true;
    this.map?.destroy();
  }

  resize() {
    this.map?.resize();
  }

  relabel() {
    this.map?.relabel();
    this.renderLegend();
    this.renderTabs();
    this.renderQueue();
    this.renderUnits();
    this.renderDetail();
  }

  /** The alarm points and checkpoints, with whether each reports (heartbeat supervision). */
  private async loadSites() {
    try {
      this.sites = await get<Site[]>("/sites");
      this.map?.setSites(this.sites);
      this.renderLegend();
    } catch (error) {
      // The board works without them; the next round tries again.
      console.warn("sites", error);
    }
    if (this.destroyed) return;
    // A city still registering its sites is asked again soon; then once a minute.
    this.sitesTimer = window.setTimeout(() => void this.loadSites(), this.sites.length > 0 ? SITES_EVERY_MS : 5_000);
  }

  private renderLegend() {
    const fresh = this.makeLegend();
    this.legend.replaceWith(fresh);
    this.legend = fresh;
  }

  /** The legend, the sites' supervision summary and the layer switches. */
  private makeLegend() {
    const statuses = ["available", "dispatched", "en_route", "on_scene", "returning"];
    const online = this.sites.filter((s) => s.online).length;
    const summary = t("site.summary").replace("{online}", String(online)).replace("{offline}", String(this.sites.length - online));
    const toggle = (group: string, label: string) =>
      h(
        "label",
        { class: "layer-toggle" },
        h("input", {
          type: "checkbox",
          checked: this.layers[group],
          "data-testid": `layer-${group}`,
          onchange: (e: Event) => {
            this.layers[group] = (e.target as HTMLInputElement).checked;
            this.map?.setLayerVisible(group, this.layers[group]);
          },
        }),
        label,
      );
    return h(
      "div",
      { class: "legend", "data-testid": "legend" },
      h("strong", null, t("map.legend")),
      statuses.map((s) => h("div", null, h("i", { class: "dot", style: { background: STATUS_COLOURS[s] } }), tOr(`status.${s}`, s))),
      [1, 2, 3, 4].map((p) => h("div", null, h("i", { class: "dot big", style: { background: PRIORITY_COLOURS[p] } }), t("map.incidents"), " ", tOr(`priority.${p}`, String(p)))),
      h("div", null, h("i", { class: "square", style: { background: SITE_COLOURS.online } }), t("site.alarm_point"), " / ", t("site.checkpoint"), " ", t("site.online")),
      h("div", null, h("i", { class: "square off", style: { background: SITE_COLOURS.offline } }), t("site.offline")),
      this.sites.length > 0 ? h("div", { class: "muted", "data-testid": "sites-summary" }, summary) : null,
      h("strong", { class: "legend-head" }, t("map.layers")),
      h("div", { class: "layers" }, toggle("units", t("map.units")), toggle("incidents", t("map.incidents")), toggle("sites", t("map.sites"))),
    );
  }

  private changed(what: string) {
    if (what === "panic") {
      const p = this.board.panics[0];
      if (p) {
        const unit = p.unit ? this.board.units.get(p.unit)?.call_sign ?? p.unit : p.device;
        this.map?.showPanic(p.lat, p.lon, `${t("panic.title")}: ${unit}`);
        toast(new Error(`${t("panic.title")}: ${unit}`));
      }
    } else if (what === "incidents") {
      this.map?.setIncidents(this.board.incidents.values());
      this.renderQueue();
      if (this.selected !== null && !this.form) this.renderDetail();
    } else if (what === "units" || what === "positions") {
      this.map?.setUnits(this.board.units.values());
      if (what === "units") {
        // Unit statuses arrive in bursts from the whole city: redraw lists once per frame.
        if (!this.pendingUnits) {
          this.pendingUnits = true;
          requestAnimationFrame(() => {
            this.pendingUnits = false;
            if (this.tab === "units") this.renderUnits();
            this.renderTabs();
            if (this.selected !== null && !this.form) this.renderAssigned();
          });
        }
      }
    }
  }

  private tick() {
    const now = serverNow();
    for (const el of this.queueList.querySelectorAll<HTMLElement>("[data-created]")) {
      const created = el.dataset.created!;
      el.textContent = age(created, now);
      const row = el.closest<HTMLElement>(".incident-row");
      const incident = row ? this.board.incidents.get(Number(row.dataset.id)) : undefined;
      if (row && incident) row.classList.toggle("overdue", overdue(incident, now));
    }
  }

  // ---- the left side ----------------------------------------------------------------------

  private renderTabs() {
    const tab = (name: "queue" | "units", label: string, count: number) =>
      h("button", { class: this.tab === name ? "tab active" : "tab", onclick: () => this.showTab(name), "data-testid": `tab-${name}` }, label, h("span", { class: "count" }, count));
    fill(this.tabs, tab("queue", t("queue.title"), this.board.incidents.size), tab("units", t("units.title"), this.board.units.size));
    this.queueList.hidden = this.tab !== "queue";
    this.unitList.hidden = this.tab !== "units";
  }

  private showTab(name: "queue" | "units") {
    this.tab = name;
    this.renderTabs();
    if (name === "units") this.renderUnits();
  }

  private renderQueue() {
    this.renderTabs();
    const now = serverNow();
    let incidents = this.board.queue();
    if (this.filter === "waiting") incidents = incidents.filter((i) => i.status === "new");
    const filters = h(
      "div",
      { class: "filters" },
      ...(["open", "waiting"] as const).map((f) =>
        h("button", { class: this.filter === f ? "chip active" : "chip", onclick: () => ((this.filter = f), this.renderQueue()) }, t(`queue.filter.${f}`)),
      ),
      can("manage_incidents") ? h("button", { class: "primary small", onclick: () => this.newIncident(), "data-testid": "new-incident", title: "N" }, "+ ", t("incident.new")) : null,
    );
    const rows = incidents.slice(0, 300).map((i) =>
      h(
        "div",
        {
          class: `incident-row${i.id === this.selected ? " selected" : ""}${overdue(i, now) ? " overdue" : ""}`,
          "data-id": i.id,
          "data-testid": "incident-row",
          onclick: () => this.select(i.id),
        },
        h("span", { class: "prio", style: { background: PRIORITY_COLOURS[i.priority] ?? "#64748b" } }, tOr(`priority.${i.priority}`, String(i.priority))),
        h(
          "div",
          { class: "grow" },
          h("div", { class: "title" }, codeName("incident_type", i.type_code)),
          h("div", { class: "sub" }, i.address || place(i.jurisdiction.community)),
        ),
        h(
          "div",
          { class: "right" },
          h("span", { class: `status s-${i.status}` }, tOr(`status.${i.status}`, i.status)),
          h("span", { class: "timer", "data-created": i.created_at }, age(i.created_at, now)),
        ),
      ),
    );
    fill(this.queueList, filters, rows.length ? rows : h("div", { class: "empty" }, t("queue.empty")));
  }

  private renderUnits() {
    const input = h("input", {
      type: "search",
      placeholder: t("units.filter"),
      value: this.unitFilter,
      "data-testid": "unit-filter",
      oninput: (e: Event) => {
        this.unitFilter = (e.target as HTMLInputElement).value.trim();
        this.renderUnitRows();
      },
    });
    const counts = new Map<string, number>();
    for (const u of this.board.units.values()) counts.set(u.state.status, (counts.get(u.state.status) ?? 0) + 1);
    const summary = h(
      "div",
      { class: "unit-summary" },
      ...UNIT_STATUSES.filter((s) => counts.get(s)).map((s) =>
        h("span", { class: "chip" }, h("i", { class: "dot", style: { background: STATUS_COLOURS[s] } }), tOr(`status.${s}`, s), " ", counts.get(s) ?? 0),
      ),
    );
    const rows = h("div", { class: "unit-rows" });
    fill(this.unitList, input, summary, rows);
    this.renderUnitRows();
    if (document.activeElement?.getAttribute("data-testid") === "unit-filter") input.focus();
  }

  private renderUnitRows() {
    const rows = this.unitList.querySelector(".unit-rows");
    if (!rows) return;
    const needle = this.unitFilter.toLowerCase();
    const units = [...this.board.units.values()]
      .filter((u) => !needle || u.call_sign.toLowerCase().includes(needle) || u.unit.toLowerCase().includes(needle))
      .sort((a, b) => Number(b.overdue) - Number(a.overdue) || a.call_sign.localeCompare(b.call_sign));
    fill(
      rows,
      units.slice(0, 200).map((u) => unitRow(u, () => this.showUnit(u.unit))),
      units.length > 200 ? h("div", { class: "more" }, `+${units.length - 200}`) : null,
      units.length === 0 ? h("div", { class: "empty" }, t("state.empty")) : null,
    );
  }

  // ---- selection and the detail panel ------------------------------------------------------

  select(id: number, fly = true) {
    this.form?.close();
    this.form = null;
    this.selected = id;
    this.recommendations = [];
    this.map?.select(id, fly);
    this.renderQueue();
    this.renderDetail();
    void this.loadRecommendations(id);
  }

  selectNext(step: number) {
    const queue = this.board.queue();
    if (!queue.length) return;
    const index = queue.findIndex((i) => i.id === this.selected);
    const next = queue[(index + step + queue.length) % queue.length];
    this.select(next.id);
  }

  private async loadRecommendations(id: number) {
    const incident = this.board.incidents.get(id);
    if (!incident || !can("manage_incidents") || incident.status === "resolved") return;
    try {
      this.recommendations = await get<Recommendation[]>(`/incidents/${id}/recommendations${query({ limit: 8 })}`);
    } catch (e) {
      this.recommendations = [];
      if (!(e instanceof ApiError && e.status === 404)) toast(e);
    }
    if (this.selected === id && !this.form) this.renderRecommendations();
  }

  private renderDetail() {
    if (this.form) return;
    const incident = this.selected === null ? undefined : this.board.incidents.get(this.selected);
    if (!incident) {
      fill(
        this.detail,
        h("div", { class: "empty big" }, t("incident.none_selected")),
        h("div", { class: "keys" }, h("h4", null, t("keys.title")), ["keys.new", "keys.next", "keys.assign", "keys.escape", "keys.help"].map((k) => h("div", null, t(k)))),
      );
      return;
    }
    const manage = can("manage_incidents");
    const i = incident;
    fill(
      this.detail,
      h(
        "header",
        { class: "detail-head" },
        h("span", { class: "prio", style: { background: PRIORITY_COLOURS[i.priority] } }, tOr(`priority.${i.priority}`, String(i.priority))),
        h("h3", null, codeName("incident_type", i.type_code)),
        h("span", { class: `status s-${i.status}`, "data-testid": "incident-status" }, tOr(`status.${i.status}`, i.status)),
      ),
      h(
        "dl",
        { class: "facts" },
        fact(t("incident.address"), i.address),
        fact(t("incident.jurisdiction"), [place(i.jurisdiction.district), place(i.jurisdiction.subdistrict), place(i.jurisdiction.community)].join(" · ")),
        fact(t("incident.source"), codeName("incident_source", i.source)),
        fact(t("incident.created_at"), when(i.created_at)),
        fact(t("incident.description"), i.description || "—"),
        i.caller_phone_masked ? fact(t("incident.caller_phone"), i.caller_phone_masked) : null,
        fact("№", i.uid),
      ),
      i.possible_duplicates.length
        ? h(
            "div",
            { class: "warning", "data-testid": "duplicates" },
            h("strong", null, t("incident.duplicates"), ": "),
            i.possible_duplicates.map((d) =>
              h(
                "span",
                { class: "dup" },
                h("a", { href: "#", onclick: (e: Event) => (e.preventDefault(), this.select(d)) }, `#${d}`),
                manage ? h("button", { class: "small", onclick: () => this.act(i, "merge", { into: d }) }, t("incident.merge"), ` #${d}`) : null,
              ),
            ),
            manage ? h("button", { class: "small", onclick: () => this.act(i, "keep") }, t("incident.keep")) : null,
          )
        : null,
      h("div", { class: "history", "data-testid": "history" }),
      h("h4", null, t("incident.units")),
      h("div", { class: "assigned", "data-testid": "assigned" }),
      manage && !["resolved", "closed", "cancelled"].includes(i.status)
        ? [h("h4", null, t("incident.recommendations")), h("div", { class: "recommendations", "data-testid": "recommendations" }, h("div", { class: "loading" }, t("state.loading")))]
        : null,
      manage ? this.actions(i) : null,
      h("h4", null, t("incident.timeline")),
      h("ol", { class: "timeline", "data-testid": "timeline" }, h("li", { class: "loading" }, t("state.loading"))),
    );
    this.renderAssigned();
    this.renderRecommendations();
    void this.loadTimeline(i.id);
    void this.loadHistory(i.id);
  }

  private renderAssigned() {
    const el = this.detail.querySelector(".assigned");
    const incident = this.selected === null ? undefined : this.board.incidents.get(this.selected);
    if (!el || !incident) return;
    const rows = incident.units.map((a) => {
      const unit = this.board.units.get(a.unit);
      const status = unit?.state.incident === incident.id ? unit.state.status : a.status;
      const next = nextStatuses(status);
      return h(
        "div",
        { class: "assigned-row", "data-unit": a.unit },
        h("i", { class: "dot", style: { background: STATUS_COLOURS[status] ?? "#64748b" } }),
        h("span", { class: "grow" }, unit?.call_sign ?? a.unit),
        h("span", { class: `status s-${status}` }, tOr(`status.${status}`, status)),
        can("update_unit_status") ? next.map((s) => h("button", { class: "small", onclick: () => this.setUnitStatus(a.unit, s) }, tOr(`status.${s}`, s))) : null,
      );
    });
    fill(el, rows.length ? rows : h("div", { class: "empty" }, t("common.none")));
  }

  private renderRecommendations() {
    const el = this.detail.querySelector(".recommendations");
    const incident = this.selected === null ? undefined : this.board.incidents.get(this.selected);
    if (!el || !incident) return;
    if (!this.recommendations.length) {
      fill(el, h("div", { class: "empty" }, t("incident.no_recommendations")));
      return;
    }
    fill(
      el,
      this.recommendations.map((r, n) =>
        h(
          "div",
          { class: "rec-row", "data-testid": "recommendation", "data-unit": r.unit },
          h("span", { class: "rank" }, n + 1),
          h(
            "div",
            { class: "grow" },
            h("div", { class: "title" }, r.call_sign ?? r.unit, " ", h("small", null, tOr(`mode.${r.mode}`, r.mode ?? ""), " · ", tOr(`category.${r.category}`, r.category ?? ""))),
            h(
              "div",
              { class: "sub" },
              `${t("incident.eta")} ${Math.round(r.eta_s / 60)} min · ${(r.distance_m / 1000).toFixed(1)} km`,
              r.owns_beat ? h("span", { class: "tag" }, t("incident.owns_beat")) : null,
              r.suitable ? null : h("span", { class: "tag warn" }, t("incident.unsuitable")),
            ),
          ),
          h("button", { class: "primary small", "data-testid": "assign", onclick: () => this.assign(incident, [r.unit]) }, t("incident.assign")),
        ),
      ),
    );
  }

  private actions(i: Incident) {
    const disposition = h(
      "select",
      { "data-testid": "disposition" },
      this.dispositions.map((d) => h("option", { value: d.code }, codeName("disposition", d.code))),
    );
    const note = h("input", { type: "text", placeholder: t("incident.note") });
    const open = !["resolved", "closed", "cancelled"].includes(i.status);
    return h(
      "div",
      { class: "actions" },
      open ? h("button", { onclick: () => this.act(i, "resolve", { disposition: disposition.value }) }, t("incident.resolve")) : null,
      i.status === "resolved" ? h("button", { onclick: () => this.act(i, "close", { disposition: disposition.value }) }, t("incident.close")) : null,
      i.status === "resolved" ? h("button", { onclick: () => this.act(i, "reopen") }, t("incident.reopen")) : null,
      open ? h("button", { class: "danger", onclick: () => this.act(i, "cancel", { disposition: disposition.value }) }, t("incident.cancel")) : null,
      h("label", null, t("incident.disposition"), disposition),
      h(
        "form",
        {
          class: "note-form",
          onsubmit: (e: Event) => {
            e.preventDefault();
            if (note.value.trim()) void this.act(i, "notes", { text: note.value.trim() }).then(() => (note.value = ""));
          },
        },
        note,
        h("button", { type: "submit", class: "small" }, t("incident.add_note")),
      ),
    );
  }

  private async loadTimeline(id: number) {
    const el = this.detail.querySelector(".timeline");
    try {
      const entries = await get<TimelineEntry[]>(`/incidents/${id}/timeline`);
      if (this.selected !== id || !el) return;
      fill(
        el,
        entries.map((e) =>
          h("li", null, h("time", null, when(e.at)), " ", h("strong", null, tOr(`timeline.${e.kind}`, e.kind)), e.unit ? ` ${this.board.units.get(e.unit)?.call_sign ?? e.unit}` : "", e.detail ? ` — ${e.detail}` : "", h("small", null, ` (${e.actor})`)),
        ),
      );
    } catch (e) {
      if (el) fill(el, h("li", { class: "error" }, e instanceof Error ? e.message : String(e)));
    }
  }

  private async loadHistory(id: number) {
    const el = this.detail.querySelector(".history");
    try {
      const prior = await get<{ distance_m: number; incident: Incident }[]>(`/incidents/${id}/history`);
      if (this.selected !== id || !el) return;
      if (!prior.length) {
        fill(el, h("div", { class: "muted" }, t("incident.history.none")));
        return;
      }
      fill(
        el,
        h(
          "div",
          { class: "warning soft" },
          h("strong", null, t("incident.history"), ` (${prior.length})`),
          h(
            "ul",
            null,
            prior.slice(0, 5).map((p) => h("li", null, when(p.incident.created_at), " · ", codeName("incident_type", p.incident.type_code), ` · ${Math.round(p.distance_m)} m`)),
          ),
        ),
      );
    } catch {
      if (el) fill(el);
    }
  }

  // ---- commands ----------------------------------------------------------------------------

  async assignFirst() {
    const incident = this.selected === null ? undefined : this.board.incidents.get(this.selected);
    const first = this.recommendations[0];
    if (incident && first) await this.assign(incident, [first.unit]);
  }

  private async assign(incident: Incident, units: string[]) {
    try {
      const updated = await post<Incident>(`/incidents/${incident.id}/assign`, { units });
      if (updated && typeof updated === "object" && "id" in updated) this.board.upsertIncident(updated);
      toast(`${t("incident.assign")} ✓`);
      void this.loadRecommendations(incident.id);
      this.renderDetail();
    } catch (e) {
      toast(e);
    }
  }

  private async act(incident: Incident, action: string, body: Record<string, unknown> = {}) {
    try {
      const updated = await post<Incident | null>(`/incidents/${incident.id}/${action}`, body);
      if (updated && typeof updated === "object" && "id" in updated) this.board.upsertIncident(updated);
      this.renderDetail();
    } catch (e) {
      toast(e);
    }
  }

  private async setUnitStatus(unit: string, status: string) {
    try {
      await post(`/units/${encodeURIComponent(unit)}/status`, { status });
    } catch (e) {
      toast(e);
    }
  }

  private showUnit(code: string) {
    const u = this.board.units.get(code);
    if (!u) return;
    if (u.state.incident != null && this.board.incidents.has(u.state.incident)) {
      this.select(u.state.incident);
      return;
    }
    this.tab = "units";
    this.unitFilter = u.call_sign;
    this.renderTabs();
    this.renderUnits();
  }

  newIncident(lat: number | null = null, lon: number | null = null) {
    if (!can("manage_incidents")) return;
    this.selected = null;
    this.map?.select(null);
    this.form?.close();
    this.form = new IncidentForm(this.types, this.sources, this.map, (incident, recommendations) => {
      this.form = null;
      this.board.upsertIncident(incident);
      this.select(incident.id, false);
      this.recommendations = recommendations;
      this.renderRecommendations();
    }, () => {
      this.form = null;
      this.renderDetail();
    });
    fill(this.detail, this.form.root);
    if (lat !== null && lon !== null) this.form.picked(lat, lon);
    this.renderQueue();
  }

  closeForm() {
    if (this.form) {
      this.form.close();
      this.form = null;
      this.renderDetail();
    }
  }
}

function overdue(i: Incident, now: number): boolean {
  const waited = (now - Date.parse(i.created_at)) / 1000;
  if (i.status === "new") return waited > 120;
  return !i.arrived_at && waited > i.response.arrival_target_s;
}

function nextStatuses(status: string): string[] {
  switch (status) {
    case "dispatched":
      return ["en_route", "on_scene"];
    case "en_route":
      return ["on_scene"];
    case "on_scene":
      return ["available"];
    default:
      return [];
  }
}

function fact(term: string, value: string | Node | null) {
  return [h("dt", null, term), h("dd", null, value ?? "—")];
}

function unitRow(u: UnitOnBoard, onclick: () => void) {
  return h(
    "div",
    { class: `unit-row${u.overdue ? " overdue" : ""}`, "data-testid": "unit-row", "data-unit": u.unit, onclick },
    h("i", { class: "dot", style: { background: STATUS_COLOURS[u.state.status] ?? "#64748b" } }),
    h("div", { class: "grow" }, h("div", { class: "title" }, u.call_sign), h("div", { class: "sub" }, tOr(`mode.${u.mode}`, u.mode), " · ", tOr(`category.${u.category}`, u.category), " · ", place(u.station))),
    h("span", { class: `status s-${u.state.status}`, "data-testid": "unit-status" }, tOr(`status.${u.state.status}`, u.state.status)),
    u.overdue ? h("span", { class: "tag warn" }, t("units.overdue")) : null,
  );
}

/** The new-incident form: place by map click (or coordinates), type by the code picker. */
class IncidentForm {
  root: HTMLElement;
  private lat = h("input", { name: "lat", type: "number", step: "0.000001", required: true, "data-testid": "lat" });
  private lon = h("input", { name: "lon", type: "number", step: "0.000001", required: true, "data-testid": "lon" });
  private where = h("div", { class: "muted where" });
  private key = crypto.randomUUID();

  constructor(
    types: Code[],
    sources: Code[],
    private map: CityMap | null,
    done: (incident: Incident, recommendations: Recommendation[]) => void,
    private cancelled: () => void,
  ) {
    const typeInput = h("input", { name: "type_code", list: "incident-types", required: true, placeholder: t("incident.type.search"), autocomplete: "off", "data-testid": "type" });
    const typeList = h(
      "datalist",
      { id: "incident-types" },
      types.filter((c) => c.parent !== null).map((c) => h("option", { value: c.code }, `${c.code} ${codeName("incident_type", c.code)}`)),
    );
    const priority = h("select", { name: "priority", "data-testid": "priority" }, h("option", { value: "" }, "—"), [1, 2, 3, 4].map((p) => h("option", { value: p }, tOr(`priority.${p}`, String(p)))));
    typeInput.addEventListener("change", () => {
      const code = types.find((c) => c.code === typeInput.value);
      if (code?.priority) priority.value = String(code.priority);
    });
    const source = h("select", { name: "source", "data-testid": "source" }, sources.map((s) => h("option", { value: s.code }, codeName("incident_source", s.code))));
    const address = h("input", { name: "address", required: true, "data-testid": "address" });
    const description = h("textarea", { name: "description", rows: 2, "data-testid": "description" });
    const callerName = h("input", { name: "caller_name", autocomplete: "off" });
    const callerPhone = h("input", { name: "caller_phone", autocomplete: "off", inputmode: "tel" });
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "create" }, t("incident.create"));
    const form = h(
      "form",
      {
        class: "incident-form",
        "data-testid": "incident-form",
        onsubmit: submitting(submit, async () => {
          const body = {
            source: source.value,
            type_code: typeInput.value.split(" ")[0],
            priority: priority.value ? Number(priority.value) : undefined,
            lat: Number(this.lat.value),
            lon: Number(this.lon.value),
            address: address.value,
            description: description.value,
            caller_name: callerName.value || undefined,
            caller_phone: callerPhone.value || undefined,
          };
          // The incident, with the units recommended for it (flattened into one object).
          const reply = await call<Incident & { recommendations: Recommendation[] }>("/incidents", { method: "POST", body, headers: { "Idempotency-Key": this.key } });
          toast(t("incident.created"));
          this.close();
          const { recommendations, ...incident } = reply;
          done(incident, recommendations ?? []);
        }),
      },
      h("h3", null, t("incident.new")),
      h("p", { class: "muted" }, t("incident.new.hint")),
      field(t("incident.type"), typeInput, "type_code"),
      typeList,
      h("div", { class: "row" }, field(t("incident.priority"), priority, "priority"), field(t("incident.source"), source, "source")),
      field(t("incident.address"), address, "address"),
      h("div", { class: "row" }, field(t("incident.lat"), this.lat, "lat"), field(t("incident.lon"), this.lon, "lon")),
      this.where,
      field(t("incident.description"), description, "description"),
      h("div", { class: "row" }, field(t("incident.caller_name"), callerName, "caller_name"), field(t("incident.caller_phone"), callerPhone, "caller_phone")),
      h("div", { class: "buttons" }, submit, h("button", { type: "button", onclick: () => (this.close(), this.cancelled()) }, t("incident.cancel_form"))),
    );
    this.root = form;
    this.map?.setPicking(true);
    requestAnimationFrame(() => typeInput.focus());
  }

  async picked(lat: number, lon: number) {
    this.lat.value = lat.toFixed(6);
    this.lon.value = lon.toFixed(6);
    this.map?.showPick(lat, lon);
    try {
      const found = await get<{ chain: Record<string, { name_zh: string; name_en: string | null } | null> }>(`/jurisdictions/lookup${query({ lat, lon })}`);
      const names = ["district", "subdistrict", "community", "grid"].map((k) => found.chain[k]).filter(Boolean).map((n) => (n ? place((n as { code?: string }).code) : ""));
      this.where.textContent = names.join(" · ");
      const address = this.root.querySelector<HTMLInputElement>("input[name=address]");
      if (address && !address.value) address.value = names.slice(0, 3).join("");
    } catch {
      this.where.textContent = "";
    }
  }

  close() {
    this.map?.setPicking(false);
    this.map?.showPick(null, null);
  }
}

function field(label: string, input: HTMLElement, name: string) {
  return h("label", { class: "field", "data-field": name }, h("span", null, label), input, h("small", { class: "field-error" }));
}
