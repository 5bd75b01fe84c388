// The console's end-to-end tests, in Debian's Chromium against a real `fangkong demo`:
//
// 1. a dispatcher signs in, sees Shenzhen with its units, creates an incident by clicking
//    the map, sees the recommendations, assigns the first unit and sees that unit's status
//    change on the map and in the unit list; the live stream is dropped and resumes;
// 2. the same screens in English;
// 3. a housing coordinator (no dispatch board) finds a resident of their community, sees
//    the server's refusal of a move-out dated before the move-in at the date field, then
//    registers a valid move-out; the property's card and the alerts.
//
// Screenshots of each screen go to e2e/artifacts/ (or $ARTIFACTS). Usage:
//   FANGKONG_BIN=path/to/fangkong node e2e/console.mjs

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchBrowser, newPage, signIn, startDemo } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.ARTIFACTS ?? join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });
const bin = process.env.FANGKONG_BIN;
if (!bin) throw new Error("set FANGKONG_BIN to the fangkong binary");

const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
const step = (text) => console.log(`e2e: ${text}`);

/** Waits until the map drew the districts and at least `units` unit icons. */
async function mapReady(page, units = 1) {
  await page.waitForFunction(
    (n) => {
      const m = window.__fangkong?.map()?.map;
      if (!m || !m.isStyleLoaded() || !m.getSource("units") || !m.getSource("b-district")) return false;
      return m.querySourceFeatures("b-district").length > 0 && m.querySourceFeatures("units").length >= n;
    },
    units,
    { timeout: 60_000 },
  );
}

/** The unit's icon on the map (its status is part of the icon's name), or null. */
function iconOnMap(page, unit) {
  return page.evaluate((u) => {
    const m = window.__fangkong.map().map;
    const found = m.querySourceFeatures("units").find((f) => f.properties.unit === u);
    return found ? found.properties.icon : null;
  }, unit);
}

const demo = await startDemo({ bin, args: ["--registry-scale", process.env.E2E_REGISTRY_SCALE ?? "0.003", "--force-scale", "0.02"] });
const browser = await launchBrowser();
const failures = [];
let current = null;
try {
  // ---- 1. the dispatcher ---------------------------------------------------------------
  {
    step("dispatcher signs in");
    const { page, errors } = await newPage(browser, { lang: "zh" });
    current = { page, errors };
    const dispatcher = demo.accounts.dispatcher;
    assert.ok(dispatcher, `the demo printed the dispatcher's account:\n${demo.output().slice(0, 3000)}`);
    await signIn(page, demo.url, "dispatcher", dispatcher.password);
    assert.equal(await page.textContent("[data-testid=nav-dispatch]"), "指挥调度");
    await mapReady(page, 10);
    await page.waitForTimeout(1500);
    await shot(page, "01-dispatch-board-zh");

    step("sees the alarm points and checkpoints, and whether they report");
    await page.waitForSelector("[data-testid=sites-summary]", { timeout: 60_000 });
    const summary = await page.textContent("[data-testid=sites-summary]");
    const [online, offline] = (summary.match(/\d+/g) ?? []).map(Number);
    assert.ok(online > 0 && offline >= 0, `the legend counts the sites: ${summary}`);
    const checkpoint = await page.evaluate(() => {
      const m = window.__fangkong.map().map;
      const cp = window.__fangkong.sites().find((s) => s.kind === "checkpoint");
      m.jumpTo({ center: [cp.lon, cp.lat], zoom: 15 });
      return cp;
    });
    assert.ok(checkpoint, "the demo has checkpoints");
    await page.waitForFunction(() => window.__fangkong.map().map.queryRenderedFeatures({ layers: ["sites-checkpoint"] }).length > 0, null, { timeout: 20_000 });
    // Units drive the roads the checkpoints stand on, and a click on a unit or an incident
    // opens that (the console prefers them to sites): click when nothing of the board is at
    // the checkpoint's point, and again if something arrived there as the click landed.
    const mapBox = await page.locator("[data-testid=map]").boundingBox();
    let opened = false;
    for (let attempt = 0; attempt < 5 && !opened; attempt += 1) {
      let centre = null;
      for (let tries = 0; tries < 40 && !centre; tries += 1) {
        centre = await page.evaluate((cp) => {
          const map = window.__fangkong.map().map;
          const p = map.project([cp.lon, cp.lat]);
          const board = map.queryRenderedFeatures([p.x, p.y], { layers: ["incidents", "units", "units-dots"] });
          const site = map.queryRenderedFeatures([p.x, p.y], { layers: ["sites-checkpoint"] });
          return board.length === 0 && site.length > 0 ? { x: p.x, y: p.y } : null;
        }, checkpoint);
        if (!centre) await page.waitForTimeout(250);
      }
      assert.ok(centre, "the checkpoint is clear of the board within 10 s");
      await page.mouse.click(mapBox.x + centre.x, mapBox.y + centre.y);
      opened = await page
        .waitForSelector("[data-testid=site-popup]", { timeout: 3_000 })
        .then(() => true)
        .catch(() => false);
      if (!opened) await page.keyboard.press("Escape");
    }
    assert.ok(opened, "a click on the checkpoint opens its card");
    const popup = await page.textContent("[data-testid=site-popup]");
    assert.ok(popup.includes(checkpoint.name) && popup.includes("卡口"), `the checkpoint's card: ${popup}`);
    await shot(page, "01b-checkpoint-zh");
    await page.click("[data-testid=layer-sites]");
    const hidden = await page.evaluate(() => window.__fangkong.map().map.getLayoutProperty("sites-checkpoint", "visibility"));
    assert.equal(hidden, "none", "the layer switch hides the sites");
    await page.click("[data-testid=layer-sites]");
    await page.evaluate(() => {
      document.querySelector(".maplibregl-popup-close-button")?.click();
      window.__fangkong.map().map.fitBounds([[113.75, 22.44], [114.63, 22.86]], { padding: 16, animate: false });
    });

    step("creates an incident by clicking the map");
    await page.click("[data-testid=new-incident]");
    await page.waitForSelector("[data-testid=incident-form]");
    const box = await page.locator("[data-testid=map]").boundingBox();
    // Futian's centre, where the map opens, is land with units about.
    const point = await page.evaluate(() => {
      const m = window.__fangkong.map().map;
      const p = m.project([114.055, 22.545]);
      return { x: p.x, y: p.y };
    });
    await page.mouse.click(box.x + point.x, box.y + point.y);
    await page.waitForFunction(() => document.querySelector("[data-testid=lat]").value !== "");
    const lat = Number(await page.inputValue("[data-testid=lat]"));
    assert.ok(Math.abs(lat - 22.545) < 0.01, `the click placed the incident (lat ${lat})`);
    const type = await page.evaluate(() => [...document.querySelectorAll("#incident-types option")].map((o) => o.value).find((v) => v.startsWith("02")) ?? document.querySelector("#incident-types option").value);
    await page.fill("[data-testid=type]", type);
    await page.dispatchEvent("[data-testid=type]", "change");
    await page.fill("[data-testid=address]", "福田区深南大道1号 e2e");
    await page.fill("[data-testid=description]", "端到端测试警情");
    await shot(page, "02-new-incident-form-zh");
    await page.click("[data-testid=create]");

    step("sees recommendations and assigns the first unit");
    await page.waitForSelector("[data-testid=recommendation]", { timeout: 30_000 });
    const first = await page.getAttribute("[data-testid=recommendation] >> nth=0", "data-unit");
    assert.ok(first, "a recommended unit");
    const before = await iconOnMap(page, first);
    await shot(page, "03-recommendations-zh");
    await page.click("[data-testid=recommendation] >> nth=0 >> [data-testid=assign]");
    await page.waitForFunction((u) => !!document.querySelector(`[data-testid=assigned] [data-unit="${u}"]`), first, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector("[data-testid=incident-status]")?.textContent !== "待派", null, { timeout: 30_000 });

    step("sees the unit's status change on the map and in the list");
    await page.waitForFunction(
      (u) => {
        const f = window.__fangkong.map().map.querySourceFeatures("units").find((x) => x.properties.unit === u);
        return f && !String(f.properties.icon).includes("-available");
      },
      first,
      { timeout: 30_000 },
    );
    const after = await iconOnMap(page, first);
    assert.notEqual(after, before, `the unit's icon changed (${before} → ${after})`);
    assert.match(after, /-(dispatched|en_route|on_scene)/);
    await shot(page, "04-assigned-zh");
    await page.click("[data-testid=tab-units]");
    const callSign = await page.evaluate((u) => window.__fangkong.board().units.get(u).call_sign, first);
    await page.fill("[data-testid=unit-filter]", callSign);
    await page.waitForFunction(
      (u) => {
        const row = document.querySelector(`[data-testid=unit-row][data-unit="${u}"] [data-testid=unit-status]`);
        return row && ["已派", "在途", "到场"].includes(row.textContent);
      },
      first,
      { timeout: 30_000 },
    );
    await shot(page, "05-unit-list-zh");

    step("the live stream drops and resumes");
    await page.evaluate(() => window.__fangkong.dropConnection());
    await page.waitForSelector("[data-testid=banner]:not([hidden])", { timeout: 10_000 });
    await shot(page, "06-reconnecting-zh");
    await page.waitForSelector("[data-testid=banner][hidden]", { state: "attached", timeout: 30_000 });
    const resumed = await page.evaluate(() => window.__fangkong.live().stats.messages);
    assert.ok(resumed > 0);

    step("the same screens in English");
    await page.click("[data-testid=lang]");
    assert.equal(await page.textContent("[data-testid=nav-dispatch]"), "Dispatch");
    await page.click("[data-testid=tab-queue]");
    await page.waitForTimeout(800);
    await shot(page, "07-dispatch-board-en");
    await page.click("[data-testid=nav-overview]");
    await page.waitForSelector("[data-testid=overview] canvas", { timeout: 20_000 });
    await page.waitForTimeout(1200);
    await shot(page, "08-overview-en");
    // The dispatcher reads residents only masked.
    await page.click("[data-testid=nav-registry]");
    await page.waitForSelector("[data-testid=search-text]");

    step("screens left behind stop listening to the live board");
    for (let trip = 0; trip < 3; trip++) {
      await page.click("[data-testid=nav-dispatch]");
      await page.waitForSelector("[data-testid=map]");
      await page.click("[data-testid=nav-overview]");
      await page.waitForSelector("[data-testid=overview]");
    }
    assert.equal(await page.evaluate(() => window.__fangkong.board().listenerCount), 1, "only the overview listens");
    await page.click("[data-testid=nav-registry]");
    await page.waitForSelector("[data-testid=search-text]");
    assert.equal(await page.evaluate(() => window.__fangkong.board().listenerCount), 0, "no screen on show listens");
    assert.deepEqual(errors, [], "no errors on the dispatcher's console");
    await page.context().close();
  }

  // ---- 3. the coordinator --------------------------------------------------------------
  {
    step("coordinator signs in and does not see the dispatch board");
    const coordinator = demo.accounts.coordinator;
    const { page, errors } = await newPage(browser, { lang: "zh" });
    current = { page, errors };
    await signIn(page, demo.url, "coordinator", coordinator.password);
    assert.equal(await page.locator("[data-testid=nav-dispatch]").count(), 0, "no dispatch board for a coordinator");
    assert.equal(await page.locator("[data-testid=map]").count(), 0);

    // A resident of the coordinator's community with an open tenancy and a name nobody else
    // there has, found as the community's officer would find one (the demo deletes its
    // generated import files once imported: they hold identity numbers).
    const resident = await lesseeWithAUniqueName(demo);
    assert.ok(resident, `a lessee in ${coordinator.jurisdiction}`);

    step(`finds ${resident.name} by name`);
    await page.selectOption("[data-testid=search-by]", "name");
    await page.fill("[data-testid=search-text]", resident.name);
    await page.click("[data-testid=search]");
    await page.waitForSelector("[data-testid=open-resident]", { timeout: 20_000 });
    const shown = await page.textContent("[data-testid=results]");
    assert.ok(shown.includes("*"), "a coordinator sees identity numbers masked");
    assert.ok(!shown.includes(resident.id_number), "the whole identity number is not shown");
    await shot(page, "09-registry-search-zh");
    await page.click("[data-testid=open-resident] >> nth=0");
    await page.waitForSelector("[data-testid=tenancy]");
    await shot(page, "10-resident-card-zh");

    step("a move-out before the move-in is refused at the date field");
    const tenancy = page.locator("[data-testid=tenancy]", { has: page.locator("[data-testid=move-out]") }).first();
    await tenancy.locator("[data-testid=move-out]").click();
    await page.fill("[data-testid=move-out-date]", "2001-01-01");
    await page.click("[data-testid=move-out-submit]");
    await page.waitForFunction(() => (document.querySelector("[data-testid=move-out-error]")?.textContent ?? "") !== "", null, { timeout: 20_000 });
    const message = await page.textContent("[data-testid=move-out-error]");
    assert.ok(message.length > 5, `the server's reason is shown at the field: ${message}`);
    await shot(page, "11-move-out-refused-zh");

    step("a valid move-out is registered");
    const today = await page.evaluate(async () => {
      const info = await (await fetch("/api/v1/system")).json();
      return info.now.slice(0, 10);
    });
    await page.fill("[data-testid=move-out-date]", today);
    await page.click("[data-testid=move-out-submit]");
    await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=tenancy] .tag")].some((t) => t.textContent === "已搬离"), null, { timeout: 20_000 });
    await shot(page, "12-moved-out-zh");

    step("the property's card and the alerts");
    await page.click("[data-testid=registry-search]");
    await page.selectOption("[data-testid=search-by]", "address");
    // The resident's building, by its address.
    await page.fill("[data-testid=search-text]", resident.address);
    await page.click("[data-testid=search]");
    await page.waitForSelector("[data-testid=open-property]", { timeout: 20_000 });
    await page.click("[data-testid=open-property] >> nth=0");
    await page.waitForSelector("[data-testid=property-card] .unit-card", { timeout: 20_000 });
    await shot(page, "13-property-card-zh");
    await page.click("[data-testid=registry-alerts]");
    await page.waitForSelector("[data-testid=alerts] table, [data-testid=alerts] .empty", { timeout: 20_000 });
    await shot(page, "14-alerts-zh");
    await page.click("[data-testid=lang]");
    await page.waitForSelector("[data-testid=alerts] table, [data-testid=alerts] .empty", { timeout: 20_000 });
    await shot(page, "15-alerts-en");
    assert.deepEqual(errors, [], "no errors on the coordinator's console");
    await page.context().close();
  }
} catch (error) {
  failures.push(error);
  if (current) {
    await shot(current.page, "failure").catch(() => {});
    console.error("console errors:", current.errors);
    console.error("toasts:", await current.page.textContent("[data-testid=toasts]").catch(() => "none"));
  }
} finally {
  await browser.close();
  await demo.stop();
}
if (failures.length) {
  console.error(failures[0]);
  process.exit(1);
}
console.log(`e2e: all passed; screenshots in ${artifacts}`);

/** Through the API as the community officer: a lessee of an open tenancy in the officer's
 * community whose name no other resident there has, with the building's address. */
async function lesseeWithAUniqueName(demo) {
  const login = await fetch(`${demo.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "officer", password: demo.accounts.officer.password }),
  });
  const { token } = await login.json();
  const headers = { authorization: `Bearer ${token}`, "x-purpose": "end-to-end test data" };
  const get = async (path) => {
    const reply = await fetch(`${demo.url}${path}`, { headers });
    if (!reply.ok) throw new Error(`${path}: ${reply.status} ${await reply.text()}`);
    return reply.json();
  };
  const buildings = await get(`/api/v1/registry/buildings?q=${encodeURIComponent("号楼")}`);
  for (const building of buildings) {
    const card = await get(`/api/v1/registry/buildings/${encodeURIComponent(building.code)}`);
    for (const tenancy of card.tenancies.filter((t) => !t.move_out)) {
      const lessee = card.residents.find((r) => r.code === tenancy.lessee);
      if (!lessee) continue;
      const namesakes = await get(`/api/v1/registry/residents?name=${encodeURIComponent(lessee.name)}`);
      if (namesakes.length === 1) return { ...lessee, address: card.building.address };
    }
  }
  return null;
}
