// The live board's state, shared by the dispatch screen and the overview: every open
// incident and every unit the user may see, kept current by the live stream.

import type { LiveMessage } from "./live";
import type { Incident, UnitOnBoard } from "./types";

const FINISHED = new Set(["closed", "cancelled"]);

export class Board {
  incidents = new Map<number, Incident>();
  units = new Map<string, UnitOnBoard>();
  /** Units by the tracker's device, for positions that name only the device. */
  panics: Extract<LiveMessage, { type: "panic" }>[] = [];
  overdue = new Set<string>();
  private listeners: ((what: "incidents" | "units" | "positions" | "panic") => void)[] = [];

  /** Calls `f` on every change until the returned function is called (a screen calls it
   * when it is destroyed, so screens left behind stop listening). */
  onChange(f: (what: "incidents" | "units" | "positions" | "panic") => void): () => void {
    this.listeners.push(f);
    return () => {
      this.listeners = this.listeners.filter((g) => g !== f);
    };
  }

  /** How many listeners there are (one per open screen that shows the board). */
  get listenerCount(): number {
    return this.listeners.length;
  }

  private emit(what: "incidents" | "units" | "positions" | "panic") {
    for (const f of this.listeners) f(what);
  }

  apply(m: LiveMessage) {
    switch (m.type) {
      case "snapshot":
        this.incidents = new Map(m.incidents.filter((i) => !FINISHED.has(i.status)).map((i) => [i.id, i]));
        this.units = new Map(m.units.map((u) => [u.unit, u]));
        for (const p of m.positions) this.position(p.unit, p.fix.lat, p.fix.lon, p.fix.fixed_at);
        this.overdue = new Set(m.units.filter((u) => u.overdue).map((u) => u.unit));
        this.emit("incidents");
        this.emit("units");
        break;
      case "incident":
        this.upsertIncident(m.incident);
        break;
      case "unit": {
        const unit = this.units.get(m.state.unit);
        if (unit) {
          const changed = unit.state.status !== m.state.status;
          unit.state = m.state;
          if (changed) {
            unit.overdue = false;
            this.overdue.delete(unit.unit);
          }
          this.emit("units");
        }
        break;
      }
      case "unit_overdue": {
        const unit = this.units.get(m.unit);
        if (unit) unit.overdue = true;
        this.overdue.add(m.unit);
        this.emit("units");
        break;
      }
      case "panic":
        this.panics.unshift(m);
        this.panics.length = Math.min(this.panics.length, 20);
        this.emit("panic");
        break;
      case "positions":
        for (const p of m.positions) this.position(p.unit, p.fix.lat, p.fix.lon, p.fix.fixed_at);
        this.emit("positions");
        break;
      case "resumed":
        break;
    }
  }

  upsertIncident(incident: Incident) {
    const known = this.incidents.get(incident.id);
    if (known && known.revision > incident.revision) return;
    if (FINISHED.has(incident.status)) this.incidents.delete(incident.id);
    else this.incidents.set(incident.id, incident);
    this.emit("incidents");
  }

  private position(unit: string | null | undefined, lat: number, lon: number, at: string) {
    if (!unit) return;
    const u = this.units.get(unit);
    if (u) {
      u.lat = lat;
      u.lon = lon;
      u.fixed_at = at;
    }
  }

  /** Open incidents, the most urgent first: priority, then the longest waiting. */
  queue(): Incident[] {
    return [...this.incidents.values()].sort((a, b) => a.priority - b.priority || Date.parse(a.created_at) - Date.parse(b.created_at));
  }
}
