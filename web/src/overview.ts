// The commander's overview (全市态势): open incidents and units at a glance, drawn with
// ECharts from the live board.

import { BarChart, PieChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import type { Board } from "./board";
import { fill, h } from "./dom";
import { t, tOr } from "./i18n";
import { PRIORITY_COLOURS, STATUS_COLOURS } from "./map";
import { place } from "./names";

echarts.use([BarChart, PieChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export class OverviewScreen {
  root: HTMLElement;
  private figures = h("div", { class: "figures" });
  private charts: echarts.ECharts[] = [];
  private boxes = [h("div", { class: "chart" }), h("div", { class: "chart" }), h("div", { class: "chart wide" })];
  private pending = false;
  private unsubscribe: () => void = () => {};

  constructor(private board: Board) {
    this.root = h("div", { class: "overview", "data-testid": "overview" }, h("h2", null, t("overview.title")), this.figures, h("div", { class: "charts" }, ...this.boxes));
    requestAnimationFrame(() => {
      this.charts = this.boxes.map((b) => echarts.init(b));
      this.draw();
    });
    this.unsubscribe = board.onChange(() => {
      if (this.pending) return;
      this.pending = true;
      window.setTimeout(() => {
        this.pending = false;
        this.draw();
      }, 1000);
    });
  }

  relabel() {
    this.root.querySelector("h2")!.textContent = t("overview.title");
    this.draw();
  }

  destroy() {
    this.unsubscribe();
    for (const c of this.charts) c.dispose();
  }

  private draw() {
    if (!this.root.isConnected && this.charts.length) return;
    const units = [...this.board.units.values()];
    const byStatus = new Map<string, number>();
    for (const u of units) byStatus.set(u.state.status, (byStatus.get(u.state.status) ?? 0) + 1);
    const incidents = [...this.board.incidents.values()];
    const byPriority = new Map<number, number>();
    const byDistrict = new Map<string, number>();
    for (const i of incidents) {
      byPriority.set(i.priority, (byPriority.get(i.priority) ?? 0) + 1);
      const d = i.jurisdiction.district ?? "—";
      byDistrict.set(d, (byDistrict.get(d) ?? 0) + 1);
    }
    const busy = units.filter((u) => ["dispatched", "en_route", "on_scene"].includes(u.state.status)).length;
    fill(
      this.figures,
      figure(t("overview.open_incidents"), incidents.length),
      figure(t("overview.units_available"), byStatus.get("available") ?? 0),
      figure(t("overview.units_busy"), busy),
    );
    if (!this.charts.length) return;
    this.charts[0].setOption({
      title: { text: t("overview.by_status"), left: "center", top: 8, textStyle: { fontSize: 13 } },
      tooltip: {},
      legend: { bottom: 0, type: "scroll" },
      series: [
        {
          name: t("overview.by_status"),
          type: "pie",
          radius: ["35%", "65%"],
          data: [...byStatus].map(([s, n]) => ({ name: tOr(`status.${s}`, s), value: n, itemStyle: { color: STATUS_COLOURS[s] } })),
        },
      ],
    });
    this.charts[1].setOption({
      title: { text: t("overview.by_priority"), left: "center", top: 8, textStyle: { fontSize: 13 } },
      tooltip: {},
      legend: { bottom: 0 },
      series: [
        {
          name: t("overview.by_priority"),
          type: "pie",
          radius: ["35%", "65%"],
          data: [...byPriority].sort((a, b) => a[0] - b[0]).map(([p, n]) => ({ name: tOr(`priority.${p}`, String(p)), value: n, itemStyle: { color: PRIORITY_COLOURS[p] } })),
        },
      ],
    });
    const districts = [...byDistrict].sort((a, b) => b[1] - a[1]);
    this.charts[2].setOption({
      tooltip: {},
      title: { text: t("overview.by_district"), left: "center", top: 8, textStyle: { fontSize: 13 } },
      grid: { left: 110, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: districts.map(([d]) => place(d)), inverse: true },
      series: [{ name: t("overview.by_district"), type: "bar", data: districts.map(([, n]) => n), itemStyle: { color: "#2563eb" } }],
    });
  }

  resize() {
    for (const c of this.charts) c.resize();
  }
}

function figure(label: string, value: number) {
  return h("div", { class: "figure" }, h("div", { class: "value" }, value.toLocaleString()), h("div", { class: "label" }, label));
}
