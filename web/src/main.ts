// The console's shell: sign-in, the screens the user's role may see, the language switch,
// keyboard shortcuts, and the banner shown while the server is unreachable.

import "./style.css";
import { ApiError, can, currentSession, get, signIn, signOut, whenReachability, whenSignedOut } from "./api";
import { Board } from "./board";
import { startClock } from "./clock";
import { DispatchScreen } from "./dispatch";
import { fill, h } from "./dom";
import { currentLang, onLangChange, setLang, t } from "./i18n";
import { LiveStream, type Connection } from "./live";
import { loadJurisdictions } from "./names";
import { OverviewScreen } from "./overview";
import { RegistryScreen } from "./registry";

type ScreenName = "dispatch" | "overview" | "registry" | "alerts";
interface Screen {
  root: HTMLElement;
  relabel(): void;
  destroy?(): void;
  resize?(): void;
}

const app = document.getElementById("app")!;
let live: LiveStream | null = null;
let board: Board | null = null;
let screen: Screen | null = null;
let screenName: ScreenName | null = null;
let dispatch: DispatchScreen | null = null;
let connection: Connection = "connecting";
let reachable = true;
let styleUrl: string | null = null;
const banner = h("div", { class: "banner", role: "status", "data-testid": "banner", hidden: true });

function screens(): ScreenName[] {
  const list: ScreenName[] = [];
  if (can("read_incidents") && can("read_positions")) list.push("dispatch");
  if (can("read_incidents")) list.push("overview");
  if (can("read_registry") || can("read_residents")) list.push("registry", "alerts");
  return list;
}

function updateBanner() {
  const down = !reachable || (live !== null && connection === "closed");
  banner.hidden = !down;
  banner.textContent = !reachable ? t("conn.unreachable") : t("conn.reconnecting");
  document.body.classList.toggle("offline", down);
  const dot = document.querySelector<HTMLElement>(".conn");
  if (dot) {
    dot.className = `conn ${down ? "down" : connection}`;
    dot.title = down ? t("conn.reconnecting") : t("conn.live");
  }
}

function renderLogin(message?: string) {
  stopLive();
  const username = h("input", { name: "username", autocomplete: "username", required: true, "data-testid": "username" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "password" });
  const totp = h("input", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code", "data-testid": "totp" });
  const error = h("div", { class: "form-error", role: "alert", hidden: !message }, message ?? "");
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "login" }, t("login.submit"));
  fill(
    app,
    h(
      "div",
      { class: "login-page" },
      h(
        "form",
        {
          class: "login",
          onsubmit: async (e: Event) => {
            e.preventDefault();
            submit.disabled = true;
            error.hidden = true;
            try {
              await signIn(username.value.trim(), password.value, totp.value.trim());
              await startShell();
            } catch (err) {
              error.hidden = false;
              error.textContent = err instanceof ApiError ? `${t("login.failed")}: ${err.message}` : String(err);
            } finally {
              submit.disabled = false;
            }
          },
        },
        h("div", { class: "brand" }, h("div", { class: "logo" }, "防"), h("div", null, h("h1", null, t("app.title")), h("div", { class: "muted" }, t("app.subtitle")))),
        h("h2", null, t("login.title")),
        error,
        h("label", { class: "field" }, h("span", null, t("login.username")), username),
        h("label", { class: "field" }, h("span", null, t("login.password")), password),
        h("label", { class: "field" }, h("span", null, t("login.totp")), totp),
        submit,
        h("button", { type: "button", class: "link", onclick: () => setLang(currentLang() === "zh" ? "en" : "zh") }, t("lang.switch")),
      ),
    ),
  );
  username.focus();
}

async function startShell() {
  const session = currentSession();
  if (!session) return renderLogin();
  try {
    const info = await get<{ map_style_url: string | null }>("/system");
    styleUrl = info.map_style_url ?? null;
  } catch {
    styleUrl = null;
  }
  await Promise.all([startClock(), loadJurisdictions()]);
  board = new Board();
  if (can("read_incidents") || can("read_positions")) {
    live = new LiveStream(
      (m) => board?.apply(m),
      (c) => {
        connection = c;
        updateBanner();
      },
    );
    live.start();
  }
  const available = screens();
  const wanted = (location.hash.replace(/^#\/?/, "") || available[0]) as ScreenName;
  show(available.includes(wanted) ? wanted : available[0]);
}

function stopLive() {
  live?.stop();
  live = null;
  screen?.destroy?.();
  screen = null;
  dispatch = null;
  screenName = null;
}

function header() {
  const session = currentSession()!;
  return h(
    "header",
    { class: "top" },
    h("div", { class: "brand small" }, h("div", { class: "logo" }, "防"), h("strong", null, t("app.title"))),
    h(
      "nav",
      null,
      screens().map((s) => h("a", { href: `#/${s}`, class: s === screenName ? "active" : "", "data-testid": `nav-${s}` }, t(`nav.${s}`))),
    ),
    h("span", { class: "grow" }),
    live ? h("span", { class: `conn ${connection}`, "data-testid": "conn" }) : null,
    h("span", { class: "who", "data-testid": "who" }, session.user.display_name, " · ", session.user.role),
    h("button", { class: "link", "data-testid": "lang", onclick: () => setLang(currentLang() === "zh" ? "en" : "zh") }, t("lang.switch")),
    h(
      "button",
      {
        class: "link",
        "data-testid": "signout",
        onclick: async () => {
          await signOut();
          location.hash = "";
          renderLogin();
        },
      },
      t("nav.signout"),
    ),
  );
}

function show(name: ScreenName | undefined) {
  if (!name) {
    fill(app, header(), h("div", { class: "empty big" }, t("state.empty")));
    return;
  }
  if (screenName !== name) {
    screen?.destroy?.();
    dispatch = null;
    if (name === "dispatch") screen = dispatch = new DispatchScreen(board!, styleUrl);
    else if (name === "overview") screen = new OverviewScreen(board!);
    else screen = new RegistryScreen(name === "alerts" ? "alerts" : "search");
    screenName = name;
  }
  if (location.hash !== `#/${name}`) history.replaceState(null, "", `#/${name}`);
  fill(app, header(), banner, h("main", { class: `screen screen-${name}` }, screen!.root));
  updateBanner();
  requestAnimationFrame(() => screen?.resize?.());
}

window.addEventListener("hashchange", () => {
  if (!currentSession()) return;
  const name = location.hash.replace(/^#\/?/, "") as ScreenName;
  if (screens().includes(name)) show(name);
});

onLangChange(() => {
  if (!currentSession() || !screenName) return renderLogin();
  screen?.relabel();
  show(screenName);
});

whenSignedOut(() => renderLogin(t("login.failed")));
whenReachability((ok) => {
  if (reachable !== ok) {
    reachable = ok;
    updateBanner();
  }
});

document.addEventListener("keydown", (e) => {
  const target = e.target as HTMLElement;
  const typing = target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT";
  if (e.key === "Escape") {
    dispatch?.closeForm();
    document.querySelector(".help")?.remove();
    (document.activeElement as HTMLElement | null)?.blur?.();
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  switch (e.key) {
    case "n":
    case "N":
      dispatch?.newIncident();
      break;
    case "j":
      dispatch?.selectNext(1);
      break;
    case "k":
      dispatch?.selectNext(-1);
      break;
    case "a":
      void dispatch?.assignFirst();
      break;
    case "/":
      e.preventDefault();
      if (screen instanceof RegistryScreen) screen.focusSearch();
      else if (screens().includes("registry")) show("registry");
      break;
    case "?":
      showHelp();
      break;
    default:
      return;
  }
});

function showHelp() {
  document.querySelector(".help")?.remove();
  document.body.appendChild(
    h(
      "div",
      { class: "help", role: "dialog", onclick: (e: Event) => (e.currentTarget as HTMLElement).remove() },
      h("div", { class: "help-box" }, h("h3", null, t("keys.title")), ["keys.new", "keys.next", "keys.assign", "keys.search", "keys.escape", "keys.help"].map((k) => h("div", null, t(k)))),
    ),
  );
}

window.addEventListener("resize", () => screen?.resize?.());

// For the end-to-end tests and the performance measurement.
(window as unknown as { __fangkong: unknown }).__fangkong = {
  live: () => live,
  board: () => board,
  map: () => dispatch?.map ?? null,
  sites: () => dispatch?.sites ?? [],
  dropConnection: () => live?.drop(),
};

setLang(currentLang());
if (currentSession()) void startShell().catch(() => renderLogin());
else renderLogin();
