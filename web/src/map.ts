// The city map: MapLibre GL with our own boundary layers (district → sub-district →
// community → grid as the zoom grows), units (an icon per patrol mode, coloured by
// status) and incidents (coloured and sized by priority). Works offline: the style has
// no tiles, glyphs or sprites unless the deployment configures a base-map style URL.

import * as maplibregl from "maplibre-gl";
import type { GeoJSONSource, MapMouseEvent, StyleSpecification } from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import { get } from "./api";
import { nameOf, t } from "./i18n";
import { when } from "./dom";
import type { Incident, Site, UnitOnBoard } from "./types";

export const STATUS_COLOURS: Record<string, string> = {
  available: "#16a34a",
  dispatched: "#f59e0b",
  en_route: "#ea580c",
  on_scene: "#dc2626",
  returning: "#0891b2",
  off_duty: "#9ca3af",
  out_of_service: "#6b7280",
};

export const PRIORITY_COLOURS: Record<number, string> = { 1: "#b91c1c", 2: "#ea580c", 3: "#ca8a04", 4: "#2563eb" };

/** The glyph drawn inside a unit's icon, per patrol mode. */
const MODE_GLYPHS: Record<string, string> = {
  foot: "步",
  vehicle: "车",
  bicycle: "骑",
  plain_clothes: "便",
  fixed_post: "岗",
  checkpoint: "卡",
};

// MapLibre's worker is its own file, served from this server like the rest.
maplibregl.setWorkerUrl(workerUrl);

/** Alarm points and checkpoints: teal while reporting, grey with a red rim when silent. */
export const SITE_COLOURS = { online: "#0f766e", offline: "#9ca3af" };
const SITE_GLYPHS: Record<string, string> = { alarm_point: "报", checkpoint: "卡" };
/** The zoom from which alarm points are drawn (checkpoints, a few dozen, always are). */
const ALARM_POINT_ZOOM = 11;

/** What the layer switches turn on and off. */
export const LAYER_GROUPS: Record<string, string[]> = {
  units: ["units", "units-dots"],
  incidents: ["incidents", "incidents-halo"],
  sites: ["sites-alarm", "sites-checkpoint"],
};

/** The zoom from which units are drawn as mode icons rather than dots. */
const ICON_ZOOM = 12;
const UNITS_EVERY_MS = 900;

const SHENZHEN_BOUNDS: [[number, number], [number, number]] = [
  [113.75, 22.44],
  [114.63, 22.86],
];

const BOUNDARY_LEVELS = [
  { kind: "district", minzoom: 0, line: "#1e3a8a", width: 2.2, fill: 0.05 },
  { kind: "subdistrict", minzoom: 10, line: "#3b82f6", width: 1.2, fill: 0 },
  { kind: "community", minzoom: 12, line: "#64748b", width: 0.8, fill: 0 },
  { kind: "grid", minzoom: 14, line: "#94a3b8", width: 0.5, fill: 0 },
] as const;

export interface CityMapOptions {
  styleUrl: string | null;
  onIncidentClick: (id: number) => void;
  onUnitClick: (unit: string) => void;
  onPick: (lat: number, lon: number) => void;
}

type Feature = GeoJSON.Feature<GeoJSON.Point, Record<string, unknown>>;

export class CityMap {
  map: maplibregl.Map;
  private picking = false;
  private units = new Map<string, UnitOnBoard>();
  private sites = new Map<string, Site>();
  private dirtySites = false;
  private popup: maplibregl.Popup | null = null;
  private incidents = new Map<number, Incident>();
  private dirtyUnits = true;
  private dirtyIncidents = true;
  private selected: number | null = null;
  private loaded = false;
  private destroyed = false;
  private unitsDrawnAt = 0;
  private boundariesLoaded = new Set<string>();
  private labels: maplibregl.Marker[] = [];
  private pickMarker: maplibregl.Marker | null = null;
  /** setData calls made, for the performance figures. */
  updates = 0;

  constructor(
    private container: HTMLElement,
    private options: CityMapOptions,
  ) {
    const style: StyleSpecification | string = options.styleUrl ?? {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#e8edf3" } }],
    };
    this.map = new maplibregl.Map({
      container,
      style,
      // The whole city at first; the districts' outlines fill the view.
      bounds: SHENZHEN_BOUNDS,
      fitBoundsOptions: { padding: 16 },
      minZoom: 8,
      maxZoom: 18,
      attributionControl: false,
      // The page may be captured for the test artifacts.
      canvasContextAttributes: { preserveDrawingBuffer: true },
    });
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    this.map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
    this.map.on("load", () => this.setUp());
    this.map.on("zoomend", () => this.loadBoundariesForZoom());
  }

  private setUp() {
    this.loaded = true;
    for (const mode of Object.keys(MODE_GLYPHS)) {
      for (const [status, colour] of Object.entries(STATUS_COLOURS)) {
        this.map.addImage(`u-${mode}-${status}`, unitIcon(MODE_GLYPHS[mode], colour, false), { pixelRatio: 2 });
        this.map.addImage(`u-${mode}-${status}-overdue`, unitIcon(MODE_GLYPHS[mode], colour, true), { pixelRatio: 2 });
      }
    }
    for (const [kind, glyph] of Object.entries(SITE_GLYPHS)) {
      this.map.addImage(`s-${kind}-on`, siteIcon(glyph, SITE_COLOURS.online, false, kind === "checkpoint"), { pixelRatio: 2 });
      this.map.addImage(`s-${kind}-off`, siteIcon(glyph, SITE_COLOURS.offline, true, kind === "checkpoint"), { pixelRatio: 2 });
    }
    for (const level of BOUNDARY_LEVELS) {
      this.map.addSource(`b-${level.kind}`, { type: "geojson", data: empty() });
      if (level.fill > 0) {
        this.map.addLayer({
          id: `b-${level.kind}-fill`,
          type: "fill",
          source: `b-${level.kind}`,
          minzoom: level.minzoom,
          paint: { "fill-color": "#3b82f6", "fill-opacity": level.fill },
        });
      }
      this.map.addLayer({
        id: `b-${level.kind}-line`,
        type: "line",
        source: `b-${level.kind}`,
        minzoom: level.minzoom,
        paint: { "line-color": level.line, "line-width": level.width },
      });
    }
    // Fixed sites under the moving force and the incidents.
    this.map.addSource("sites", { type: "geojson", data: empty() });
    for (const [id, kind, minzoom] of [["sites-alarm", "alarm_point", ALARM_POINT_ZOOM], ["sites-checkpoint", "checkpoint", 0]] as const) {
      this.map.addLayer({
        id,
        type: "symbol",
        source: "sites",
        minzoom,
        filter: ["==", ["get", "kind"], kind],
        layout: {
          "icon-image": ["get", "icon"],
          "icon-allow-overlap": true,
          "icon-ignore-placement": true,
          "icon-size": ["interpolate", ["linear"], ["zoom"], 9, 0.55, 14, 0.85],
        },
      });
    }
    this.map.addSource("incidents", { type: "geojson", data: empty() });
    this.map.addLayer({
      id: "incidents-halo",
      type: "circle",
      source: "incidents",
      filter: ["==", ["get", "selected"], true],
      paint: { "circle-radius": 18, "circle-color": "#000", "circle-opacity": 0, "circle-stroke-color": "#111827", "circle-stroke-width": 3 },
    });
    this.map.addLayer({
      id: "incidents",
      type: "circle",
      source: "incidents",
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, ["-", 9, ["get", "priority"]], 15, ["-", 15, ["get", "priority"]]],
        "circle-color": ["match", ["get", "priority"], 1, PRIORITY_COLOURS[1], 2, PRIORITY_COLOURS[2], 3, PRIORITY_COLOURS[3], PRIORITY_COLOURS[4]],
        "circle-stroke-color": ["case", ["==", ["get", "status"], "new"], "#111827", "#ffffff"],
        "circle-stroke-width": ["case", ["==", ["get", "status"], "new"], 2.5, 1.5],
        "circle-opacity": 0.92,
      },
    });
    this.map.addSource("units", { type: "geojson", data: empty() });
    // At city zoom a unit is a dot in its status colour (circles need no symbol placement,
    // which is what thousands of icons cost); closer in, the icon shows its patrol mode.
    this.map.addLayer({
      id: "units-dots",
      type: "circle",
      source: "units",
      maxzoom: ICON_ZOOM,
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 2.6, ICON_ZOOM, 5],
        "circle-color": ["get", "colour"],
        "circle-stroke-color": ["case", ["get", "overdue"], "#7f1d1d", "#ffffff"],
        "circle-stroke-width": ["case", ["get", "overdue"], 2, 0.8],
      },
    });
    this.map.addLayer({
      id: "units",
      type: "symbol",
      source: "units",
      minzoom: ICON_ZOOM,
      layout: {
        "icon-image": ["get", "icon"],
        "icon-allow-overlap": true,
        "icon-ignore-placement": true,
        "icon-size": ["interpolate", ["linear"], ["zoom"], ICON_ZOOM, 0.8, 16, 1.1],
        "symbol-sort-key": ["get", "rank"],
      },
    });
    for (const layer of ["incidents", "units", "units-dots", "sites-alarm", "sites-checkpoint"]) {
      this.map.on("mouseenter", layer, () => (this.map.getCanvas().style.cursor = "pointer"));
      this.map.on("mouseleave", layer, () => (this.map.getCanvas().style.cursor = this.picking ? "crosshair" : ""));
    }
    this.map.on("click", (e) => this.click(e));
    void this.loadBoundaries("district");
    void this.loadBoundaries("subdistrict");
    this.loadBoundariesForZoom();
    this.flush();
  }

  private click(e: MapMouseEvent) {
    if (this.picking) {
      this.options.onPick(e.lngLat.lat, e.lngLat.lng);
      return;
    }
    const hits = this.map.queryRenderedFeatures(e.point, { layers: ["incidents", "units", "units-dots"] });
    const incident = hits.find((f) => f.layer.id === "incidents");
    if (incident) {
      this.options.onIncidentClick(Number(incident.properties.id));
      return;
    }
    const unit = hits.find((f) => f.layer.id === "units" || f.layer.id === "units-dots");
    if (unit) {
      this.options.onUnitClick(String(unit.properties.unit));
      return;
    }
    const site = this.map.queryRenderedFeatures(e.point, { layers: ["sites-alarm", "sites-checkpoint"] })[0];
    const found = site ? this.sites.get(String(site.properties.id)) : undefined;
    if (found) this.showSite(found);
  }

  /** A site's card in a popup: what and where it is, whether it reports. */
  private showSite(site: Site) {
    this.popup?.remove();
    const el = document.createElement("div");
    el.className = "site-popup";
    el.dataset.testid = "site-popup";
    const title = document.createElement("strong");
    title.textContent = site.name ?? site.unique_id;
    const kind = document.createElement("div");
    kind.textContent = `${t(`site.${site.kind}`)} · ${site.unique_id}`;
    const state = document.createElement("div");
    state.className = site.online ? "site-on" : "site-off";
    const seen = site.last_seen_at ? `${t("site.last_seen")} ${when(site.last_seen_at)}` : t("site.never");
    state.textContent = `${t(site.online ? "site.online" : "site.offline")} · ${seen}`;
    el.append(title, kind, state);
    this.popup = new maplibregl.Popup({ closeButton: true, offset: 10 }).setLngLat([site.lon, site.lat]).setDOMContent(el).addTo(this.map);
  }

  /** Shows or hides a group of layers (units, incidents, sites). */
  setLayerVisible(group: string, visible: boolean) {
    if (!this.loaded) {
      this.map.once("load", () => this.setLayerVisible(group, visible));
      return;
    }
    for (const id of LAYER_GROUPS[group] ?? []) {
      if (this.map.getLayer(id)) this.map.setLayoutProperty(id, "visibility", visible ? "visible" : "none");
    }
  }

  setSites(sites: Iterable<Site>) {
    this.sites = new Map([...sites].map((s) => [s.unique_id, s]));
    this.dirtySites = true;
  }

  private loadBoundariesForZoom() {
    const zoom = this.map.getZoom();
    if (zoom >= 11) void this.loadBoundaries("community");
    if (zoom >= 13) void this.loadBoundaries("grid");
  }

  private async loadBoundaries(kind: string) {
    if (this.boundariesLoaded.has(kind)) return;
    this.boundariesLoaded.add(kind);
    try {
      const data = await get<GeoJSON.FeatureCollection>(`/jurisdictions/features?kind=${kind}`);
      (this.map.getSource(`b-${kind}`) as GeoJSONSource | undefined)?.setData(data);
      if (kind === "district") this.labelDistricts(data);
      this.container.dispatchEvent(new CustomEvent("boundaries", { detail: kind }));
    } catch (error) {
      this.boundariesLoaded.delete(kind);
      console.warn("boundaries", kind, error);
    }
  }

  /** District names as HTML labels (the offline style has no glyphs for map text). */
  private labelDistricts(data: GeoJSON.FeatureCollection) {
    for (const marker of this.labels) marker.remove();
    this.labels = [];
    for (const feature of data.features) {
      const p = feature.properties as { name_zh?: string; name_en?: string | null } | null;
      const centre = centroid(feature.geometry);
      if (!p?.name_zh || !centre) continue;
      const el = document.createElement("div");
      el.className = "district-label";
      el.dataset.zh = p.name_zh;
      el.dataset.en = p.name_en ?? p.name_zh;
      el.textContent = nameOf({ name_zh: p.name_zh, name_en: p.name_en });
      this.labels.push(new maplibregl.Marker({ element: el }).setLngLat(centre).addTo(this.map));
    }
  }

  relabel() {
    for (const marker of this.labels) {
      const el = marker.getElement();
      el.textContent = nameOf({ name_zh: el.dataset.zh ?? "", name_en: el.dataset.en });
    }
  }

  /** A panic alarm (an alarm point or a tracker's SOS): a pulsing marker for two minutes. */
  showPanic(lat: number, lon: number, label: string) {
    const el = document.createElement("div");
    el.className = "panic-marker";
    el.title = label;
    el.dataset.testid = "panic-marker";
    const marker = new maplibregl.Marker({ element: el }).setLngLat([lon, lat]).addTo(this.map);
    window.setTimeout(() => marker.remove(), 120_000);
  }

  setPicking(on: boolean) {
    this.picking = on;
    this.map.getCanvas().style.cursor = on ? "crosshair" : "";
  }

  showPick(lat: number | null, lon: number | null) {
    this.pickMarker?.remove();
    this.pickMarker = null;
    if (lat === null || lon === null) return;
    this.pickMarker = new maplibregl.Marker({ color: "#7c3aed" }).setLngLat([lon, lat]).addTo(this.map);
  }

  setUnits(units: Iterable<UnitOnBoard>) {
    this.units = new Map([...units].map((u) => [u.unit, u]));
    this.dirtyUnits = true;
  }

  updateUnit(unit: UnitOnBoard) {
    this.units.set(unit.unit, unit);
    this.dirtyUnits = true;
  }

  setIncidents(incidents: Iterable<Incident>) {
    this.incidents = new Map([...incidents].map((i) => [i.id, i]));
    this.dirtyIncidents = true;
  }

  select(id: number | null, fly = false) {
    this.selected = id;
    this.dirtyIncidents = true;
    const incident = id === null ? undefined : this.incidents.get(id);
    if (fly && incident) this.map.easeTo({ center: [incident.lon, incident.lat], zoom: Math.max(this.map.getZoom(), 13) });
  }

  flyTo(lat: number, lon: number, zoom = 14) {
    this.map.easeTo({ center: [lon, lat], zoom });
  }

  /** Pushes changed sources to the map, at most once per animation frame. */
  private flush = () => {
    if (this.destroyed) return;
    if (this.loaded) {
      const now = performance.now();
      // Positions arrive once a second: redrawing thousands of units more often than
      // that costs frames and shows nothing new (statuses wait at most this long).
      if (this.dirtyUnits && now - this.unitsDrawnAt >= UNITS_EVERY_MS) {
        this.dirtyUnits = false;
        this.unitsDrawnAt = now;
        const features: Feature[] = [];
        for (const u of this.units.values()) {
          if (u.lat == null || u.lon == null || u.state.status === "off_duty") continue;
          const mode = MODE_GLYPHS[u.mode] ? u.mode : "foot";
          const status = STATUS_COLOURS[u.state.status] ? u.state.status : "out_of_service";
          features.push({
            type: "Feature",
            geometry: { type: "Point", coordinates: [u.lon, u.lat] },
            properties: {
              unit: u.unit,
              icon: `u-${mode}-${status}${u.overdue ? "-overdue" : ""}`,
              colour: STATUS_COLOURS[status],
              overdue: u.overdue,
              rank: status === "available" ? 0 : 1,
            },
          });
        }
        this.setPoints("units", features);
      }
      if (this.dirtySites) {
        this.dirtySites = false;
        const features: Feature[] = [];
        for (const site of this.sites.values()) {
          features.push({
            type: "Feature",
            geometry: { type: "Point", coordinates: [site.lon, site.lat] },
            properties: { id: site.unique_id, kind: site.kind, online: site.online, icon: `s-${site.kind}-${site.online ? "on" : "off"}` },
          });
        }
        this.setPoints("sites", features);
      }
      if (this.dirtyIncidents) {
        this.dirtyIncidents = false;
        const features: Feature[] = [];
        for (const i of this.incidents.values()) {
          features.push({
            type: "Feature",
            geometry: { type: "Point", coordinates: [i.lon, i.lat] },
            properties: { id: i.id, priority: i.priority, status: i.status, selected: i.id === this.selected },
          });
        }
        this.setPoints("incidents", features);
      }
    }
    requestAnimationFrame(this.flush);
  };

  private setPoints(source: string, features: Feature[]) {
    this.updates += 1;
    (this.map.getSource(source) as GeoJSONSource).setData({ type: "FeatureCollection", features });
  }

  resize() {
    this.map.resize();
  }

  destroy() {
    this.destroyed = true;
    this.map.remove();
  }
}

function empty(): GeoJSON.FeatureCollection {
  return { type: "FeatureCollection", features: [] };
}

/** A round badge with the mode's glyph, in the status colour (a red ring when overdue). */
function unitIcon(glyph: string, colour: string, overdue: boolean): ImageData {
  const size = 44;
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext("2d")!;
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, size / 2 - 3, 0, Math.PI * 2);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = overdue ? 5 : 3;
  ctx.strokeStyle = overdue ? "#7f1d1d" : "#ffffff";
  ctx.stroke();
  return withGlyph(ctx, glyph, size, 22);
}

/** Writes `glyph` in white at the middle of the icon and returns the icon's pixels. */
function withGlyph(ctx: CanvasRenderingContext2D, glyph: string, size: number, px: number): ImageData {
  ctx.fillStyle = "#ffffff";
  ctx.font = `bold ${px}px 'Noto Sans CJK SC', 'WenQuanYi Zen Hei', 'Microsoft YaHei', 'PingFang SC', sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(glyph, size / 2, size / 2 + 1);
  return ctx.getImageData(0, 0, size, size);
}

/** A rounded square with the site's glyph (larger for checkpoints; a red rim when silent). */
function siteIcon(glyph: string, colour: string, silent: boolean, large: boolean): ImageData {
  const size = large ? 44 : 34;
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext("2d")!;
  const r = 6;
  const [x0, y0, x1, y1] = [3, 3, size - 3, size - 3];
  ctx.beginPath();
  ctx.moveTo(x0 + r, y0);
  ctx.arcTo(x1, y0, x1, y1, r);
  ctx.arcTo(x1, y1, x0, y1, r);
  ctx.arcTo(x0, y1, x0, y0, r);
  ctx.arcTo(x0, y0, x1, y0, r);
  ctx.closePath();
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = silent ? 4 : 2.5;
  ctx.strokeStyle = silent ? "#dc2626" : "#ffffff";
  ctx.stroke();
  return withGlyph(ctx, glyph, size, large ? 22 : 17);
}

/** The centre of a (multi)polygon's largest ring's bounding box: good enough for a label. */
function centroid(geometry: GeoJSON.Geometry): [number, number] | null {
  let best: GeoJSON.Position[] | null = null;
  let bestLength = 0;
  const rings: GeoJSON.Position[][] =
    geometry.type === "Polygon" ? [geometry.coordinates[0]] : geometry.type === "MultiPolygon" ? geometry.coordinates.map((p) => p[0]) : [];
  for (const ring of rings) {
    if (ring.length > bestLength) {
      best = ring;
      bestLength = ring.length;
    }
  }
  if (!best) return null;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of best) {
    sx += x;
    sy += y;
  }
  return [sx / best.length, sy / best.length];
}
