// TwinLoop operator console: sign-in, fleet overview, one page per asset, live over a
// WebSocket. Plain ES modules served by the TwinLoop application itself: no CDN, no build.
// Every value arrives in SI with its unit; display.js converts for the user's setting.
import { api, session, can } from "./api.js";
import { display, setUnits, units } from "./display.js";
import { Live } from "./live.js";
import { chartNode, lines } from "./charts.js";
import { renderPanel } from "./panels.js";

const ROW_PX = 34;        // fleet list row height (the list is virtualised)
const PAGE = 100;         // rows per server page of GET /fleet
const view = document.getElementById("view");
const live = new Live(document.getElementById("live"));
let current = null;       // the page on screen: {kind: "fleet" | "asset", ...}

// -- sign-in ----------------------------------------------------------------------------

async function signIn(token) {
  session.token = token;
  const who = await api("/whoami");
  session.user = who.user;
  session.role = who.role;
  sessionStorage.setItem("twinloop.token", token);
  document.getElementById("user").textContent = `${who.user} (${who.role})`;
  document.getElementById("site").textContent = who.site;
  document.getElementById("who").hidden = false;
  live.connect();
}

function showSignIn(message = "") {
  sessionStorage.removeItem("twinloop.token");
  Object.assign(session, { token: null, user: null, role: null });
  document.getElementById("who").hidden = true;
  live.close();
  view.replaceChildren(signInForm);
  signInForm.hidden = false;
  document.getElementById("signin-error").textContent = message;
  document.getElementById("token").focus();
}

const signInForm = document.getElementById("signin");
signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await signIn(document.getElementById("token").value.trim());
    route();
  } catch (error) {
    showSignIn(error.message);
  }
});
document.getElementById("signout").addEventListener("click", () => showSignIn());
const unitSelect = document.getElementById("units");
unitSelect.value = units();
unitSelect.addEventListener("change", () => { setUnits(unitSelect.value); route(); });

// -- small DOM helpers ------------------------------------------------------------------

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  node.append(...children.flat().filter((c) => c != null));
  return node;
}

function badge(healthy) {
  return el("span", { class: healthy ? "badge ok" : "badge bad" },
    healthy ? "✓ healthy" : "✗ unhealthy");
}

function age(seconds) {
  if (seconds == null) return "—";
  return seconds < 120 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min`;
}

// -- fleet overview ---------------------------------------------------------------------

function fleetPage() {
  const search = el("input", { type: "search", placeholder: "search id or kind",
    "aria-label": "search assets", value: sessionStorage.getItem("twinloop.q") || "" });
  const kind = el("select", { "aria-label": "kind" }, el("option", { value: "" }, "all kinds"));
  const count = el("span", { class: "count", role: "status" });
  const spacer = el("div", { class: "spacer" });
  const rows = el("div", { class: "rows", role: "rowgroup" });
  const scroller = el("div", { class: "scroller", tabindex: "0" }, spacer, rows);
  const header = el("div", { class: "row head", role: "row" },
    ...["asset", "kind", "mode", "health", "alarms", "last tick"].map(
      (h) => el("span", { role: "columnheader" }, h)));
  view.replaceChildren(el("section", { class: "card fleet", role: "table",
    "aria-label": "assets" }, el("div", { class: "filters" }, search, kind, count),
  header, scroller));
  const pages = new Map();   // page index -> Promise of items
  let total = 0;
  let generation = 0;

  function query() {
    return `q=${encodeURIComponent(search.value)}&kind=${encodeURIComponent(kind.value)}`;
  }

  function load(index) {
    if (!pages.has(index)) {
      const mine = generation;
      pages.set(index, api(`/fleet?offset=${index * PAGE}&limit=${PAGE}&${query()}`)
        .then((page) => {
          if (mine === generation) {
            total = page.total;
            spacer.style.height = `${total * ROW_PX}px`;
            count.textContent = `${total} assets`;
            if (!kind.dataset.filled) {
              kind.dataset.filled = "1";
              for (const k of page.kinds) kind.append(el("option", { value: k }, k));
            }
          }
          return page.items;
        }));
    }
    return pages.get(index);
  }

  async function paint() {
    const first = Math.floor(scroller.scrollTop / ROW_PX);
    const visible = Math.ceil(scroller.clientHeight / ROW_PX) + 2;
    const needed = new Set([Math.floor(first / PAGE), Math.floor((first + visible) / PAGE)]);
    const loaded = new Map();
    for (const index of needed) loaded.set(index, await load(index));
    const items = [];
    for (let i = first; i < Math.min(first + visible, total); i++) {
      const item = loaded.get(Math.floor(i / PAGE))?.[i % PAGE];
      if (item) items.push([i, item]);
    }
    rows.replaceChildren(...items.map(([i, a]) => fleetRow(a, i)));
    live.follow(items.map(([, a]) => a.id), (status) => {
      const row = rows.querySelector(`[data-asset="${CSS.escape(status.id)}"]`);
      if (row) row.replaceWith(fleetRow({ ...status, alarms: row.alarms },
        Math.round(parseFloat(row.style.top) / ROW_PX)));
      measured(status);
    });
  }

  function fleetRow(asset, index) {
    const alarms = asset.alarms || {};
    const row = el("a", { class: "row", role: "row",
      href: `#/asset/${encodeURIComponent(asset.id)}`, style: `top:${index * ROW_PX}px`,
      "data-asset": asset.id },
    el("span", { role: "cell" }, asset.id), el("span", { role: "cell" }, asset.kind),
    el("span", { role: "cell", class: `mode ${asset.mode}` }, asset.mode),
    el("span", { role: "cell" }, badge(asset.healthy)),
    el("span", { role: "cell" }, alarmSummary(alarms)),
    el("span", { role: "cell", class: "age", "data-built": asset.built_at ?? "" }, "—"));
    row.alarms = alarms;
    showAge(row.querySelector(".age"));
    return row;
  }

  function reset() {
    generation += 1;
    pages.clear();
    sessionStorage.setItem("twinloop.q", search.value);
    scroller.scrollTop = 0;
    paint();
  }

  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(reset, 200); });
  kind.addEventListener("change", reset);
  scroller.addEventListener("scroll", () => requestAnimationFrame(paint));
  current = { kind: "fleet", refresh: () => { pages.clear(); paint(); } };
  paint();
}

function showAge(cell) {
  const built = parseFloat(cell.dataset.built);
  cell.textContent = Number.isFinite(built) ? age(Date.now() / 1000 - built) : "—";
}
setInterval(() => document.querySelectorAll(".age[data-built]").forEach(showAge), 1000);

/** Tick-to-browser latency of each live status shown, ms (read by bench/console.py). */
window.twinloop = { latencies: [] };
function measured(status) {
  if (status.built_at == null) return;
  requestAnimationFrame(() => {
    const latencies = window.twinloop.latencies;
    latencies.push(Date.now() - status.built_at * 1000);
    if (latencies.length > 10000) latencies.splice(0, latencies.length - 10000);
  });
}

const MARKS = { critical: "◆", high: "▲", medium: "●", low: "○" };
const PRIORITIES = ["critical", "high", "medium", "low"];

/** Annunciated alarms by priority ({"HIGH": 1}): shape and text, never colour alone. */
export function alarmSummary(alarms) {
  const counts = Object.fromEntries(Object.entries(alarms).map(([k, n]) => [k.toLowerCase(), n]));
  const parts = PRIORITIES.filter((p) => counts[p] > 0).map((priority) =>
    el("span", { class: `alarm ${priority}`, title: `${counts[priority]} ${priority}` },
      `${MARKS[priority]} ${counts[priority]} ${priority}`));
  return parts.length ? parts : el("span", { class: "muted" }, "none");
}

// -- one asset --------------------------------------------------------------------------

async function assetPage(id) {
  const [status, limits] = await Promise.all([api(`/assets/${id}`), api(`/assets/${id}/limits`)]);
  const page = { kind: "asset", id, status, limits };
  const header = el("div", { class: "title" });
  const values = el("section", { class: "card", "aria-label": "values" });
  const panel = el("section", { class: "card panel", "aria-label": `${status.kind} view` });
  const writes = el("section", { class: "card", "aria-label": "writes" });
  const queue = el("section", { class: "card", "aria-label": "proposals" });
  const audit = el("section", { class: "card", "aria-label": "audit" });
  const alarms = el("section", { class: "card", "aria-label": "alarms" });
  const trend = el("section", { class: "card trend", "aria-label": "trend" });
  view.replaceChildren(el("div", { class: "asset" }, header, alarms, panel, trend, values,
    writes, queue, audit));
  page.paint = (s) => {
    page.status = s;
    paintHeader(header, s);
    paintAlarms(alarms, s, page);
    paintValues(values, s);
    renderPanel(panel, s, page);
    paintTrend(trend, s);
  };
  page.refreshLists = async () => {
    paintProposals(queue, id, await api(`/assets/${id}/proposals`), page);
    paintAudit(audit, await api(`/assets/${id}/audit?limit=30`));
  };
  paintWrites(writes, status, limits, page);
  page.paint(status);
  current = { ...page, refresh: () => assetPage(id) };
  live.follow([id], (s) => {
    if (current?.id === s.id) { current.paint(s); measured(s); }
  });
  await page.refreshLists();
}

function paintHeader(node, s) {
  const mode = can("operator")
    ? el("select", { "aria-label": "mode", onchange: async (event) => {
      try { await api(`/assets/${s.id}/mode`, { method: "PUT", body: { mode: event.target.value } }); }
      catch (error) { alert(error.message); }
    } }, ...["OFF", "MANUAL", "ADVISORY", "AUTONOMOUS"].map(
      (m) => el("option", { value: m, selected: m === s.mode }, m)))
    : el("span", { class: `mode ${s.mode}` }, s.mode);
  node.replaceChildren(el("a", { href: "#/fleet" }, "← fleet"), el("h1", {}, s.id),
    el("span", { class: "muted" }, s.kind), mode, badge(s.healthy),
    el("span", { class: "muted" }, `tick ${s.ticks}, overruns ${s.overruns}`),
    s.outputs_held ? el("span", { class: "badge bad" }, "outputs held") : "",
    ...s.errors.map((e) => el("span", { class: "error" }, e)));
}

function paintAlarms(node, s, page) {
  const shown = s.alarms.filter((a) => a.state !== "NORMAL");
  const act = (alarm, verb, body) => el("button", { type: "button", "data-action": verb,
    onclick: async () => {
      try {
        await api(`/alarms/${encodeURIComponent(alarm.alarm)}/${verb}`,
          { method: "POST", body });
      } catch (error) { alert(error.message); }
      page.refreshLists();
    } }, verb);
  node.replaceChildren(el("h2", {}, `Alarms (${shown.length} of ${s.alarms.length})`),
    s.alarm_flood ? el("p", { class: "error" }, "▲ alarm flood: 10 or more in 10 minutes") : "",
    el("table", {}, el("tbody", {}, shown.map((a) => {
      const priority = a.priority.toLowerCase();
      const controls = !can("operator") ? [] : [
        ["UNACKNOWLEDGED", "RTNUN"].includes(a.state) ? act(a, "acknowledge", {}) : null,
        ["UNACKNOWLEDGED", "ACKNOWLEDGED", "RTNUN"].includes(a.state)
          ? act(a, "shelve", { duration_s: 3600 }) : null,
        a.state === "SHELVED" ? act(a, "unshelve", {}) : null];
      return el("tr", { "data-alarm": a.alarm },
        el("td", { class: `alarm ${priority}` }, `${MARKS[priority]} ${a.priority}`),
        el("td", {}, a.state), el("td", {}, a.name),
        el("td", {}, a.value == null ? "—" : display(a.value, s.measurement[a.signal]?.unit
          ?? s.estimate[a.signal.replace("estimate.", "")]?.unit ?? "")),
        el("td", { class: "reason" }, a.message), el("td", {}, controls));
    }))));
}

const TREND_HOURS = { "1 h": 1, "6 h": 6, "24 h": 24 };

/** Estimate ± std against measurement against reference from the historian, for one
 *  output at a time (zoomable), with the controller's predicted trajectory ahead;
 *  redrawn at most once per status. */
function paintTrend(node, s) {
  if (!node.state) {
    const names = Object.keys(s.reference).length ? Object.keys(s.reference)
      : Object.keys(s.measurement);
    const signal = el("select", { "aria-label": "trend signal" },
      ...names.concat(Object.keys(s.measurement).filter((n) => !names.includes(n)))
        .map((n) => el("option", { value: n }, n)));
    const range = el("select", { "aria-label": "trend range" },
      ...Object.keys(TREND_HOURS).map((r) => el("option", { value: r }, r)));
    const chart = chartNode("trend of the chosen signal");
    node.state = { signal, range, chart, busy: false };
    signal.addEventListener("change", () => paintTrend(node, node.state.status));
    range.addEventListener("change", () => paintTrend(node, node.state.status));
    node.replaceChildren(el("h2", {}, "Trend"), el("div", { class: "filters" }, signal, range),
      chart);
  }
  const state = node.state;
  state.status = s;
  if (state.busy) return;
  state.busy = true;
  const name = state.signal.value;
  const since = s.time - 3600 * TREND_HOURS[state.range.value];
  const signals = [name, `estimate.${name}`, `reference.${name}`].filter((n) =>
    n === name || (n.startsWith("estimate.") ? name in s.estimate : name in s.reference));
  api(`/assets/${encodeURIComponent(s.id)}/history?signals=${signals.join(",")}` +
    `&since=${since}&until=${s.time}`).then((series) => {
    const traces = [];
    for (const one of series) {
      const x = one.time.map((t) => new Date(t * 1000));
      const kind = one.signal.split(".")[0];
      if (kind === "estimate" && one.std) {
        const upper = one.value.map((v, i) => v + 2 * (one.std[i] ?? 0));
        const lower = one.value.map((v, i) => v - 2 * (one.std[i] ?? 0));
        traces.push({ name: "estimate + 2 std", x, y: upper, unit: one.unit, dash: "dot" },
          { name: "estimate - 2 std", x, y: lower, unit: one.unit, dash: "dot" });
      }
      traces.push({ name: kind === one.signal ? "measured" : kind, x, y: one.value,
        unit: one.unit, mode: kind === one.signal ? "markers" : "lines", size: 4 });
    }
    const predicted = s.controller.predicted?.[name];
    if (predicted?.length) {  // the controller's plan, one value per period from now
      traces.push({ name: "predicted", dash: "dash",
        x: predicted.map((_, k) => new Date((s.time + k * s.period_s) * 1000)), y: predicted,
        unit: traces[0]?.unit });
    }
    if (traces.length) {
      lines(state.chart, name, ["time", ""], [name, traces[0].unit], traces);
    }
  }).catch((error) => {
    state.chart.replaceChildren(el("p", { class: "muted" }, `no history: ${error.message}`));
  }).finally(() => { state.busy = false; });
}

function paintValues(node, s) {
  const rows = Object.entries(s.estimate).map(([name, e]) => {
    const m = s.measurement[name];
    const r = s.reference[name];
    return el("tr", {}, el("th", { scope: "row" }, name),
      el("td", {}, display(e.value, e.unit, e.std)),
      el("td", {}, m ? display(m.value, m.unit) : "—"),
      el("td", {}, r ? display(r.value, r.unit) : "—"));
  });
  const setpoints = Object.entries(s.setpoints).map(([name, v]) =>
    el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, display(v.value, v.unit)),
      el("td", { colspan: 2, class: "muted" }, "applied")));
  node.replaceChildren(el("h2", {}, "Estimate, measurement, reference"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["signal", "estimate ± std",
      "measured", "reference"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows, setpoints)),
    el("p", { class: "reason" }, s.controller.reason || ""));
}

function paintWrites(node, s, limits, page) {
  if (!can("operator")) { node.remove(); return; }
  const answer = el("ul", { class: "answer", role: "status", "aria-live": "polite" });
  const inputs = Object.entries(limits).map(([name, l]) => {
    const unit = s.setpoints[name]?.unit || "";
    return el("label", {}, `${name} [${l.lower} … ${l.upper} ${unit}]`,
      el("input", { type: "number", step: "any", name, "aria-label": `setpoint ${name}` }));
  });
  const references = Object.entries(s.reference).map(([name, r]) => el("label", {},
    `${name} (${r.unit})`, el("input", { type: "number", step: "any", name,
      "aria-label": `reference ${name}` })));
  async function submit(event, path, form) {
    event.preventDefault();
    const body = {};
    for (const input of form.querySelectorAll("input")) {
      if (input.value !== "") body[input.name] = Number(input.value);
    }
    try {
      const result = await api(path, { method: "PUT", body });
      answer.replaceChildren(...(result.records || Object.entries(result.reference || {})
        .map(([k, v]) => ({ signal: k, outcome: "set", reason: `${v}` })))
        .map((r) => el("li", { class: `outcome ${r.outcome}` },
          `${r.signal}: ${r.outcome} — ${r.reason}`)));
    } catch (error) {
      answer.replaceChildren(el("li", { class: "error" }, error.message));
    }
    page.refreshLists();
  }
  const setForm = el("form", { "aria-label": "setpoints" }, inputs,
    el("button", { type: "submit" }, "Write through the safety gate"));
  setForm.addEventListener("submit", (e) => submit(e, `/assets/${s.id}/setpoints`, setForm));
  const refForm = el("form", { "aria-label": "reference" }, references,
    el("button", { type: "submit" }, "Set reference"));
  refForm.addEventListener("submit", (e) => submit(e, `/assets/${s.id}/reference`, refForm));
  node.replaceChildren(el("h2", {}, "Setpoints and reference"), setForm, refForm, answer);
}

function paintProposals(node, id, proposals, page) {
  const pending = proposals;  // the queue holds only those awaiting a decision
  const act = (p, verb) => el("button", { type: "button", "data-action": verb,
    onclick: async () => {
      try { await api(`/assets/${id}/proposals/${p.n}/${verb}`, { method: "POST" }); }
      catch (error) { alert(error.message); }
      page.refreshLists();
    } }, verb);
  node.replaceChildren(el("h2", {}, `Proposals awaiting approval (${pending.length})`),
    el("ol", { class: "proposals" }, pending.slice(-20).reverse().map((p) =>
      el("li", { "data-proposal": p.n }, el("strong", {}, `#${p.n} `),
        Object.entries(p.setpoints).map(([k, v]) => `${k} → ${v.toPrecision(4)}`).join(", "),
        el("div", { class: "reason" }, p.reason),
        can("operator") ? [act(p, "approve"), act(p, "reject")] : null))));
}

function paintAudit(node, records) {
  node.replaceChildren(el("h2", {}, "Audit"), el("table", { class: "audit" },
    el("thead", {}, el("tr", {}, ...["time", "user", "signal", "outcome", "applied",
      "reason"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, records.slice(-30).reverse().map((r) => el("tr", {},
      el("td", {}, new Date(r.time * 1000).toISOString().slice(11, 19)),
      el("td", {}, r.user || r.source || ""), el("td", {}, r.signal),
      el("td", { class: `outcome ${r.outcome}` }, r.outcome),
      el("td", {}, r.applied == null ? "—" : r.applied.toPrecision(5)),
      el("td", {}, r.reason))))));
}

// -- routing ----------------------------------------------------------------------------

async function route() {
  if (!session.token) { showSignIn(); return; }
  const [, page, id] = location.hash.split("/");
  try {
    if (page === "asset" && id) await assetPage(decodeURIComponent(id));
    else fleetPage();
  } catch (error) {
    if (error.status === 401) showSignIn(error.message);
    else view.replaceChildren(el("p", { class: "error", role: "alert" }, error.message));
  }
}

window.addEventListener("hashchange", route);
const saved = sessionStorage.getItem("twinloop.token");
if (saved) {
  signIn(saved).then(route, (error) => showSignIn(error.message));
} else {
  showSignIn();
}
