// How the dispatch board holds up with the whole demo city live: thousands of units moving
// and calls arriving. Starts `fangkong demo` (a release build: FANGKONG_BIN), signs in as
// the dispatcher in Chromium and, after a warm-up, measures for each phase (the map at
// rest, then panned every half second): frame times from requestAnimationFrame (median,
// p95, p99, max), long tasks (> 50 ms) from the browser's own observer, and the live
// stream's messages, position fixes and bytes per second the page received and applied.
// Prints one JSON object per line, like `fangkong bench`. Usage:
//   FANGKONG_BIN=target/release/fangkong node e2e/perf.mjs [--force-scale 0.2] [--seconds 30]
// Headless Chromium draws WebGL in software (SwiftShader): frame times are an upper bound
// of what a workstation with a GPU shows.

import { launchBrowser, newPage, signIn, startDemo } from "./harness.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const forceScale = arg("force-scale", "0.2");
const seconds = Number(arg("seconds", "30"));
const bin = process.env.FANGKONG_BIN;
if (!bin) throw new Error("set FANGKONG_BIN to a release build of fangkong");

const print = (metric, value, unit, extra = {}) =>
  console.log(JSON.stringify({ bench: "console", metric, value: Math.round(value * 100) / 100, unit, ...extra }));

const demo = await startDemo({ bin, registry: false, args: ["--registry-scale", "0", "--force-scale", forceScale, "--speed", "60"] });
const browser = await launchBrowser();
try {
  const { page, errors } = await newPage(browser, { width: 1920, height: 1080 });
  await signIn(page, demo.url, "dispatcher", demo.accounts.dispatcher.password);
  await page.waitForFunction(() => window.__fangkong?.map()?.map?.getSource("units") && window.__fangkong.board().units.size > 0, null, { timeout: 120_000 });
  const units = await page.evaluate(() => window.__fangkong.board().units.size);
  print("units_on_board", units, "units", { force_scale: Number(forceScale) });
  await page.waitForTimeout(15_000);

  for (const phase of ["idle", "panning"]) {
    const result = await page.evaluate(
      async ({ ms, pan }) => {
        const live = window.__fangkong.live();
        const map = window.__fangkong.map();
        const before = { ...live.stats, updates: map.updates };
        const frames = [];
        let longTasks = 0;
        let longTaskMs = 0;
        const observer = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            longTasks += 1;
            longTaskMs += e.duration;
          }
        });
        observer.observe({ entryTypes: ["longtask"] });
        let panTimer = null;
        if (pan) {
          let step = 0;
          panTimer = setInterval(() => map.map.panBy([step++ % 2 ? -120 : 120, 60 * (step % 3 ? 1 : -1)], { duration: 400 }), 500);
        }
        const start = performance.now();
        await new Promise((resolve) => {
          let last = start;
          const tick = (now) => {
            frames.push(now - last);
            last = now;
            if (now - start < ms) requestAnimationFrame(tick);
            else resolve();
          };
          requestAnimationFrame(tick);
        });
        if (panTimer) clearInterval(panTimer);
        observer.disconnect();
        const elapsed = (performance.now() - start) / 1000;
        const after = { ...live.stats, updates: map.updates };
        frames.shift();
        frames.sort((a, b) => a - b);
        const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
        return {
          frames: frames.length,
          fps: frames.length / elapsed,
          p50: q(0.5),
          p95: q(0.95),
          p99: q(0.99),
          max: frames[frames.length - 1],
          longTasks,
          longTaskMs,
          messages: (after.messages - before.messages) / elapsed,
          positions: (after.positions - before.positions) / elapsed,
          bytes: (after.bytes - before.bytes) / elapsed,
          updates: (after.updates - before.updates) / elapsed,
        };
      },
      { ms: seconds * 1000, pan: phase === "panning" },
    );
    const tag = { phase };
    print("frames_per_second", result.fps, "fps", tag);
    print("frame_time_p50", result.p50, "ms", tag);
    print("frame_time_p95", result.p95, "ms", tag);
    print("frame_time_p99", result.p99, "ms", tag);
    print("frame_time_max", result.max, "ms", tag);
    print("long_tasks", result.longTasks, "count", { ...tag, total_ms: Math.round(result.longTaskMs) });
    print("ws_messages_per_second", result.messages, "msg/s", tag);
    print("ws_positions_per_second", result.positions, "fixes/s", tag);
    print("ws_bytes_per_second", result.bytes, "B/s", tag);
    print("map_source_updates_per_second", result.updates, "updates/s", tag);
  }
  if (errors.length) throw new Error(`console errors: ${errors.join("; ")}`);
} finally {
  await browser.close();
  await demo.stop();
}
