// Shared by the end-to-end tests and the performance run: starts `fangkong demo` on a free
// port with its own data directory, reads the accounts it prints, and launches Debian's
// Chromium through playwright-core (no browser is downloaded).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find(existsSync);

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Starts the demo; resolves when it listens and (with `registry`) its registry is imported. */
export async function startDemo({ bin, args = [], registry = true, timeoutMs = 300_000 }) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "fangkong-e2e-"));
  const child = spawn(bin, ["demo", "--data-dir", dir, "--listen", `127.0.0.1:${port}`, "--osmand-listen", "off", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FANGKONG_LOG: "info" },
  });
  let output = "";
  const accounts = {};
  let listening = false;
  let imported = !registry;
  let failed = null;
  const onData = (chunk) => {
    output += chunk.toString();
    for (const line of output.split("\n")) {
      const m = line.match(/^\s{2}(\w+)\s+(\S+)\s+(\w+)\s+(\d+)\s*$/);
      if (m) accounts[m[1]] = { password: m[2], role: m[3], jurisdiction: m[4] };
      if (line.includes("fangkong listening on")) listening = true;
      if (line.includes("demo registry imported")) imported = true;
      if (line.includes("the demo registry was not imported")) failed = line;
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const started = Date.now();
  while (!(listening && imported)) {
    if (failed) throw new Error(`demo: ${failed}`);
    if (child.exitCode !== null) throw new Error(`demo exited (${child.exitCode}):\n${output.slice(-4000)}`);
    if (Date.now() - started > timeoutMs) throw new Error(`demo did not start within ${timeoutMs} ms:\n${output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    dir,
    accounts,
    output: () => output,
    file: (name) => readFileSync(join(dir, name), "utf8"),
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  if (!CHROMIUM) throw new Error("Chromium is not installed (apt-get install chromium)");
  // playwright gives every launch a fresh, temporary profile.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  });
  return browser;
}

/** A page that records every error the console logs or throws. */
export async function newPage(browser, { lang = "zh", width = 1600, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale: lang === "zh" ? "zh-CN" : "en-US" });
  await context.addInitScript((l) => localStorage.setItem("fangkong.lang", l), lang);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // A refusal the test provokes (422) is logged by the browser as a failed resource.
    if (m.type() === "error" && !/Failed to load resource: .* status of 422/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return { page, context, errors };
}

export async function signIn(page, url, username, password) {
  await page.goto(url);
  await page.fill("[data-testid=username]", username);
  await page.fill("[data-testid=password]", password);
  await page.click("[data-testid=login]");
  await page.waitForSelector("[data-testid=who]");
}
