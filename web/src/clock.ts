// The server's clock as the console sees it. Ages and timers are measured on the server's
// time line, not the browser's: a workstation's clock may be off, and the demo city runs
// faster than real time. Two readings of /api/v1/system give the offset and the rate.

import { get } from "./api";

let base = { server: Date.now(), local: performance.now() };
let rate = 1;
let timer: number | null = null;

export function serverNow(): number {
  return base.server + (performance.now() - base.local) * rate;
}

async function sample() {
  const before = performance.now();
  try {
    const info = await get<{ now: string }>("/system");
    const local = (before + performance.now()) / 2;
    const server = Date.parse(info.now);
    const elapsedLocal = local - base.local;
    if (elapsedLocal > 2000 && base.server > 0) {
      const measured = (server - base.server) / elapsedLocal;
      // Round to what a clock plausibly runs at (1× for real deployments).
      if (measured > 0.1 && measured < 100_000) rate = Math.abs(measured - 1) < 0.05 ? 1 : measured;
    }
    base = { server, local };
  } catch {
    // Keep extrapolating; the connection banner tells the user.
  }
}

export async function startClock() {
  await sample();
  if (timer === null) timer = window.setInterval(sample, 15_000);
  window.setTimeout(sample, 3000);
}
