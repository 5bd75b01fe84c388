// The housing registry screens (流动人口和出租屋): search within the user's jurisdiction,
// a resident's card and a property's card (units → tenancies → residents → permits →
// visits), the alert lists, and the registration and move-out forms, with the server's
// refusals shown at their fields. Every read of a person carries its purpose (X-Purpose).

import { can, currentSession, get, post, query } from "./api";
import { fill, h } from "./dom";
import { t, tOr } from "./i18n";
import { place } from "./names";
import { loadInto, submitting, toast } from "./ui";
import type { Alert, Property, PropertyCard, Resident, ResidentCard, Tenancy } from "./types";

type By = "id_number" | "name" | "phone" | "address";

export class RegistryScreen {
  root: HTMLElement;
  private main = h("section", { class: "registry-main", "data-testid": "registry-main" });
  private by: By = "name";
  private text = "";
  private purpose = t("registry.purpose.default");
  private view: { kind: "search" } | { kind: "resident"; code: string } | { kind: "property"; code: string } | { kind: "alerts"; filter: string } | { kind: "register" } = { kind: "search" };
  private searchInput: HTMLInputElement | null = null;

  constructor(start: "search" | "alerts" = "search") {
    this.root = h("div", { class: "registry" }, this.main);
    if (start === "alerts") this.view = { kind: "alerts", filter: "" };
    this.render();
  }

  relabel() {
    this.render();
  }

  focusSearch() {
    this.searchInput?.focus();
  }

  private go(view: RegistryScreen["view"]) {
    this.view = view;
    this.render();
  }

  private render() {
    switch (this.view.kind) {
      case "search":
        return this.renderSearch();
      case "resident":
        return this.renderResident(this.view.code);
      case "property":
        return this.renderProperty(this.view.code);
      case "alerts":
        return this.renderAlerts(this.view.filter);
      case "register":
        return this.renderRegister();
    }
  }

  private toolbar(...extra: (Node | null)[]) {
    const session = currentSession();
    const tab = (kind: "search" | "alerts" | "register", label: string) =>
      h("button", { class: this.view.kind === kind ? "tab active" : "tab", "data-testid": `registry-${kind}`, onclick: () => this.go(kind === "alerts" ? { kind, filter: "" } : { kind }) }, label);
    return h(
      "div",
      { class: "registry-bar" },
      tab("search", t("registry.search")),
      tab("alerts", t("registry.alerts")),
      can("manage_registry") ? tab("register", t("registry.register")) : null,
      h("span", { class: "grow" }),
      h("span", { class: "muted" }, t("registry.community"), ": ", place(session?.user.jurisdiction)),
      ...extra,
    );
  }

  // ---- search ------------------------------------------------------------------------------

  private renderSearch() {
    const results = h("div", { class: "results", "data-testid": "results" });
    const select = h(
      "select",
      { "data-testid": "search-by", onchange: (e: Event) => (this.by = (e.target as HTMLSelectElement).value as By) },
      (["name", "id_number", "phone", "address"] as By[]).map((b) => h("option", { value: b, selected: b === this.by }, t(`registry.by.${b}`))),
    );
    const input = h("input", { type: "search", value: this.text, placeholder: t("registry.search.placeholder"), "data-testid": "search-text", autocomplete: "off" });
    this.searchInput = input;
    const purpose = h("input", { value: this.purpose, "data-testid": "purpose", oninput: (e: Event) => (this.purpose = (e.target as HTMLInputElement).value) });
    const form = h(
      "form",
      {
        class: "search-form",
        onsubmit: (e: Event) => {
          e.preventDefault();
          this.text = input.value.trim();
          this.by = select.value as By;
          if (this.text) void this.search(results);
        },
      },
      select,
      input,
      h("label", { class: "purpose" }, t("registry.purpose"), purpose),
      h("button", { type: "submit", class: "primary", "data-testid": "search" }, t("registry.search")),
    );
    fill(this.main, this.toolbar(), form, results);
    if (this.text) void this.search(results);
    requestAnimationFrame(() => input.focus());
  }

  private async search(results: HTMLElement) {
    const by = this.by;
    const text = this.text;
    if (by === "address") {
      await loadInto(
        results,
        () => get<Property[]>(`/registry/buildings${query({ q: text })}`),
        (found) => (found.length ? propertyTable(found, (code) => this.go({ kind: "property", code })) : h("div", { class: "empty" }, t("registry.no_results"))),
      );
      return;
    }
    await loadInto(
      results,
      () => get<Resident[]>(`/registry/residents${query({ [by]: text })}`, this.purpose),
      (found) => (found.length ? residentTable(found, (code) => this.go({ kind: "resident", code })) : h("div", { class: "empty" }, t("registry.no_results"))),
    );
  }

  // ---- cards -------------------------------------------------------------------------------

  private back() {
    return h("button", { class: "small", onclick: () => this.go({ kind: "search" }) }, "← ", t("registry.back"));
  }

  private renderResident(code: string) {
    const body = h("div", { class: "card", "data-testid": "resident-card" });
    fill(this.main, this.toolbar(this.back()), body);
    void loadInto(
      body,
      () => get<ResidentCard>(`/registry/residents/${encodeURIComponent(code)}`, this.purpose),
      (card) => [
        h("h2", null, card.resident.name, " ", h("small", { class: "muted" }, card.resident.code)),
        residentFacts(card.resident),
        h("h3", null, t("registry.permit")),
        card.permit
          ? h("dl", { class: "facts" }, fact(t("registry.permit.kind"), tOr(`permit.${card.permit.kind}`, card.permit.kind)), fact(t("registry.permit.issued"), card.permit.issued), fact(t("registry.permit.expires"), card.permit.expires), fact(t("registry.permit.endorsed"), card.permit.endorsed ?? "—"))
          : h("div", { class: "muted" }, t("registry.permit.none")),
        h("h3", null, t("registry.tenancies")),
        card.tenancies.length ? card.tenancies.map((tn) => this.tenancy(tn, () => this.renderResident(code))) : h("div", { class: "muted" }, t("state.empty")),
      ],
    );
  }

  private tenancy(tn: Tenancy, refresh: () => void) {
    const current = !tn.move_out;
    const box = h(
      "div",
      { class: "tenancy", "data-testid": "tenancy", "data-code": tn.code },
      h(
        "div",
        { class: "tenancy-head" },
        h("strong", null, tn.unit),
        h("span", { class: current ? "tag ok" : "tag" }, current ? t("registry.current") : t("registry.ended")),
        h("span", { class: "muted" }, `${t("registry.move_in")} ${tn.move_in}`, tn.move_out ? ` · ${t("registry.move_out")} ${tn.move_out}` : ""),
        h("span", { class: "grow" }),
        current && can("manage_registry")
          ? h("button", { class: "small", "data-testid": "move-out", onclick: () => box.appendChild(this.moveOutForm(tn, refresh)) }, t("registry.move_out.title"))
          : null,
      ),
      h("div", { class: "muted" }, `${t("registry.lessee")}: ${tn.lessee}`, tn.members.length ? ` · ${t("registry.members")}: ${tn.members.join(", ")}` : ""),
    );
    return box;
  }

  private moveOutForm(tn: Tenancy, refresh: () => void) {
    const day = h("input", { name: "move_out", type: "date", required: true, "data-testid": "move-out-date" });
    const submit = h("button", { type: "submit", class: "primary small", "data-testid": "move-out-submit" }, t("registry.move_out.submit"));
    const form: HTMLFormElement = h(
      "form",
      {
        class: "inline-form",
        "data-testid": "move-out-form",
        onsubmit: submitting(
          submit,
          async () => {
            await post(`/registry/tenancies/${encodeURIComponent(tn.code)}/move-out`, { move_out: day.value });
            toast(t("registry.move_out.done"));
            refresh();
          },
          "move_out",
        ),
      },
      h("label", { class: "field", "data-field": "move_out" }, h("span", null, t("registry.move_out")), day, h("small", { class: "field-error", "data-testid": "move-out-error" })),
      submit,
    );
    return form;
  }

  private renderProperty(code: string) {
    const body = h("div", { class: "card", "data-testid": "property-card" });
    fill(this.main, this.toolbar(this.back()), body);
    void loadInto(
      body,
      () => get<PropertyCard>(`/registry/buildings/${encodeURIComponent(code)}`, this.purpose),
      (card) => {
        const b = card.building;
        const byUnit = new Map<string, Tenancy[]>();
        for (const tn of card.tenancies) byUnit.set(tn.unit, [...(byUnit.get(tn.unit) ?? []), tn]);
        const residents = new Map(card.residents.map((r) => [r.code, r]));
        const permits = new Map(card.permits.map((p) => [p.resident, p]));
        return [
          h("h2", null, b.address, " ", h("small", { class: "muted" }, b.code)),
          h("dl", { class: "facts" }, fact(t("registry.kind"), tOr(`building.${b.kind}`, b.kind)), fact(t("registry.floors"), String(b.floors)), fact(t("registry.community"), place(b.community)), fact(t("registry.grid"), place(b.grid))),
          h("h3", null, t("registry.landlords")),
          card.landlords.length
            ? table(
                [t("registry.name"), t("registry.phone"), t("registry.safety_person"), t("registry.pledge_expires")],
                card.landlords.map((l) => [l.name, l.phone ?? "—", l.safety_person, l.pledge_expires ?? "—"]),
              )
            : h("div", { class: "muted" }, t("state.empty")),
          h("h3", null, t("registry.units"), ` (${(b.units ?? []).length})`),
          h(
            "div",
            { class: "units" },
            (b.units ?? []).map((u) =>
              h(
                "div",
                { class: "unit-card" },
                h("div", { class: "unit-head" }, h("strong", null, u.code), h("span", { class: "muted" }, `${t("registry.floor")} ${u.floor} · ${u.area_m2} m² · ${u.rooms} ${t("registry.rooms")}${u.rent_yuan ? ` · ¥${u.rent_yuan}` : ""}`)),
                (byUnit.get(u.code) ?? []).map((tn) =>
                  h(
                    "div",
                    { class: "unit-tenancy" },
                    h("span", { class: tn.move_out ? "tag" : "tag ok" }, tn.move_out ? t("registry.ended") : t("registry.current")),
                    [...new Set([tn.lessee, ...tn.members])].map((code) => {
                      const r = residents.get(code);
                      const p = permits.get(code);
                      return h(
                        "a",
                        { href: "#", class: "person", onclick: (e: Event) => (e.preventDefault(), this.go({ kind: "resident", code })) },
                        r ? `${r.name} (${r.id_number})` : code,
                        p ? h("small", { class: "muted" }, ` ${t("registry.permit.expires")} ${p.expires}`) : null,
                      );
                    }),
                  ),
                ),
              ),
            ),
          ),
          h("h3", null, t("registry.visits")),
          card.visits.length
            ? table(
                [t("registry.visit.day"), t("registry.unit"), t("registry.visit.by"), t("registry.visit.outcome"), t("registry.visit.occupants")],
                card.visits.map((v) => [v.day, v.unit, v.by, tOr(`outcome.${v.outcome}`, v.outcome), v.occupants === null ? "—" : String(v.occupants)]),
              )
            : h("div", { class: "muted" }, t("state.empty")),
        ];
      },
    );
  }

  // ---- alerts ------------------------------------------------------------------------------

  private renderAlerts(filter: string) {
    const kinds = ["", "permit_expiring", "permit_expired", "overcrowded", "unregistered_resident", "pledge_lapsed"];
    const list = h("div", { class: "results", "data-testid": "alerts" });
    const chips = h(
      "div",
      { class: "filters" },
      kinds.map((k) => h("button", { class: k === filter ? "chip active" : "chip", onclick: () => this.go({ kind: "alerts", filter: k }) }, k ? tOr(`registry.alert.${k}`, k) : t("queue.filter.open"))),
    );
    fill(this.main, this.toolbar(), chips, list);
    void loadInto(
      list,
      () => get<Alert[]>(`/registry/alerts${query({ kind: filter })}`, this.purpose),
      (alerts) =>
        alerts.length
          ? table(
              [t("registry.alert.kind"), t("registry.community"), t("registry.alert.subject"), t("registry.alert.due"), t("registry.alert.detail")],
              alerts.slice(0, 500).map((a) => [tOr(`registry.alert.${a.kind}`, a.kind), place(a.community), a.subject, a.due ?? "—", a.detail]),
            )
          : h("div", { class: "empty" }, t("registry.alerts.none")),
    );
  }

  // ---- registration ------------------------------------------------------------------------

  private renderRegister() {
    const input = (name: string, attrs: Record<string, unknown> = {}) => h("input", { name, autocomplete: "off", "data-testid": `reg-${name}`, ...attrs });
    const fields: [string, string, HTMLElement][] = [
      ["code", t("registry.code"), input("code", { required: true })],
      ["id_number", t("registry.id_number"), input("id_number", { required: true })],
      ["name", t("registry.name"), input("name", { required: true })],
      ["sex", t("registry.sex"), h("select", { name: "sex" }, h("option", { value: "" }, "—"), h("option", { value: "M" }, t("registry.sex.M")), h("option", { value: "F" }, t("registry.sex.F")))],
      ["birth_date", t("registry.birth_date"), input("birth_date", { type: "date" })],
      ["phone", t("registry.phone"), input("phone", { inputmode: "tel" })],
      ["origin_province", t("registry.origin"), input("origin_province")],
      ["employer", t("registry.employer"), input("employer")],
      ["unit", t("registry.unit"), input("unit")],
      ["grid", t("registry.grid"), input("grid")],
    ];
    const submit = h("button", { type: "submit", class: "primary", "data-testid": "register-submit" }, t("registry.register.submit"));
    const form: HTMLFormElement = h(
      "form",
      {
        class: "register-form",
        "data-testid": "register-form",
        onsubmit: submitting(submit, async () => {
          const body: Record<string, string> = {};
          for (const [name] of fields) {
            const el = form.querySelector<HTMLInputElement>(`[name=${name}]`);
            if (el?.value) body[name] = el.value.trim();
          }
          const resident = await post<Resident>("/registry/residents", body, this.purpose);
          toast(t("registry.registered"));
          this.go({ kind: "resident", code: resident.code });
        }),
      },
      h("h2", null, t("registry.register")),
      h(
        "div",
        { class: "grid-form" },
        fields.map(([name, label, el]) => h("label", { class: "field", "data-field": name }, h("span", null, label), el, h("small", { class: "field-error" }))),
      ),
      h("div", { class: "buttons" }, submit),
    );
    fill(this.main, this.toolbar(), form);
  }
}

function fact(term: string, value: string | Node) {
  return [h("dt", null, term), h("dd", null, value)];
}

function residentFacts(r: Resident) {
  return h(
    "dl",
    { class: "facts" },
    fact(t("registry.id_number"), h("span", { "data-testid": "id-number" }, r.id_number, r.id_number_masked ? h("small", { class: "tag" }, t("registry.masked")) : null)),
    fact(t("registry.document"), tOr(`doc.${r.document}`, r.document)),
    fact(t("registry.sex"), tOr(`registry.sex.${r.sex}`, r.sex)),
    fact(t("registry.birth_date"), r.birth_date),
    fact(t("registry.phone"), r.phone ?? "—"),
    fact(t("registry.origin"), [r.origin_province, r.origin_city].filter(Boolean).join(" ") || "—"),
    fact(t("registry.employer"), r.employer ?? "—"),
    fact(t("registry.unit"), r.unit ?? "—"),
    fact(t("registry.community"), place(r.community)),
    fact(t("registry.grid"), place(r.grid)),
  );
}

function residentTable(found: Resident[], open: (code: string) => void) {
  return table(
    [t("registry.name"), t("registry.sex"), t("registry.birth_date"), t("registry.id_number"), t("registry.phone"), t("registry.unit"), t("registry.community"), ""],
    found.map((r) => [r.name, tOr(`registry.sex.${r.sex}`, r.sex), r.birth_date, r.id_number, r.phone ?? "—", r.unit ?? "—", place(r.community), h("button", { class: "small", "data-testid": "open-resident", onclick: () => open(r.code) }, t("registry.open"))]),
  );
}

function propertyTable(found: Property[], open: (code: string) => void) {
  return table(
    [t("registry.code"), t("registry.address"), t("registry.kind"), t("registry.floors"), t("registry.community"), ""],
    found.map((b) => [b.code, b.address, tOr(`building.${b.kind}`, b.kind), String(b.floors), place(b.community), h("button", { class: "small", "data-testid": "open-property", onclick: () => open(b.code) }, t("registry.open"))]),
  );
}

function table(head: string[], rows: (string | Node)[][]) {
  return h("table", { class: "table" }, h("thead", null, h("tr", null, head.map((c) => h("th", null, c)))), h("tbody", null, rows.map((r) => h("tr", null, r.map((c) => h("td", null, c))))));
}
