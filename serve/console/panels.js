// Each kind's screen, drawn from GET /assets/{id}/view (plants.views: computed by the
// twin from its estimate) and the live status. One function per kind.
import { api, can } from "./api.js";
import { bars, chartNode, gauge, lines, stacked } from "./charts.js";
import { display } from "./display.js";

/** Draw ``status``'s kind screen into ``node``; at most one view request in flight. */
export async function renderPanel(node, status, page) {
  const draw = {
    rod_pump: rodPump, asphalt_terminal: terminal, asphalt_tank: tank,
    dra_pipeline: pipeline, smelter_cell: smelter, centrifugal_pump: pump,
  }[status.kind];
  if (!draw) { node.hidden = true; return; }
  if (node.dataset.kind !== status.kind) {
    node.dataset.kind = status.kind;
    node.state = { parts: null, busy: false, again: false, log: [] };
  }
  const state = node.state;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    const view = await api(`/assets/${encodeURIComponent(status.id)}/view`);
    if (!state.parts) state.parts = draw.build(node, status, page);
    draw.paint(state.parts, view, status, state);
    node.dataset.revision = status.revision;
  } catch (error) {
    node.replaceChildren(Object.assign(document.createElement("p"),
      { className: "error", textContent: `view unavailable: ${error.message}` }));
    state.parts = null;
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; renderPanel(node, page.status, page); }
  }
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function facts(rows) {
  return el("table", { class: "facts" }, el("tbody", {}, ...rows.map(([name, text]) =>
    el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, text)))));
}

function percent(value) {
  return value == null ? "—" : `${(100 * value).toFixed(1)} %`;
}

// -- rod pump ---------------------------------------------------------------------------

const rodPump = {
  build(node, status) {
    const parts = {
      cards: chartNode("surface and downhole dynamometer cards"),
      fillage: chartNode("fillage gauge with the target as a ghost needle"),
      goodman: chartNode("modified Goodman diagram"),
      pump: pumpJack(), facts: el("div"), log: el("ol", { class: "log", "aria-label":
        "controller explanations", reversed: "" }),
      confidence: el("div", { class: "confidence", "aria-label": "signal confidence" }),
      shadow: el("div", { class: "shadow" }),
    };
    node.replaceChildren(el("h2", {}, "Sucker-rod pump"),
      el("div", { class: "charts" }, parts.cards, parts.fillage, parts.goodman,
        el("div", {}, parts.pump, parts.facts, parts.shadow, parts.confidence)),
      el("h2", {}, "What the controller did and why"), parts.log);
    parts.mode = null;
    return parts;
  },
  paint(parts, view, status, state) {
    // measured: the last card the pump's controller sent, and its diagnosis; predicted:
    // none received yet, the twin's own card at its estimate
    const measured = view.card_source === "measured";
    const stroke = measured
      ? ` ${new Date(view.card_time * 1000).toISOString().slice(11, 19)} UTC` : "";
    lines(parts.cards, `${measured ? "Measured" : "Predicted"} cards${stroke}`,
      ["position", "m"], ["load", "N"], [
        { name: measured ? "surface (measured)" : "surface (predicted by the twin)",
          x: view.surface.x, y: view.surface.y },
        { name: measured ? "downhole (measured, wave equation)"
          : "downhole (predicted, wave equation)", x: view.downhole.x, y: view.downhole.y },
      ]);
    gauge(parts.fillage, "Fillage", view.fillage, view.fillage_target, 0.7);
    const envelope = { name: "allowable S_a (modified Goodman)", x: view.goodman_envelope.x,
      y: view.goodman_envelope.y, dash: "dash" };
    const points = view.goodman.map((t) => ({ name: `taper ${t.section} ` +
      `(${(t.diameter * 1000).toFixed(1)} mm): ${percent(t.loading)}`, mode: "markers",
    x: [t.min_stress], y: [t.max_stress], symbol: t.loading > 1 ? "x" : "circle" }));
    lines(parts.goodman, "Goodman diagram", ["minimum stress", "Pa"],
      ["maximum stress", "Pa"], [envelope, ...points]);
    parts.pump.style.setProperty("--stroke", `${(60 / view.spm).toFixed(3)}s`);
    parts.pump.dataset.spm = view.spm.toFixed(2);
    parts.facts.replaceChildren(facts([
      ["SPM", view.spm.toFixed(2)], ["fillage", percent(view.fillage)],
      ["target", percent(view.fillage_target)],
      ["fluid pound", view.fluid_pound ? "▲ yes" : "no"],
      ["peak rod loading", percent(Math.max(...view.goodman.map((t) => t.loading)))],
    ]));
    const confidence = view.card_confidence;
    parts.confidence.replaceChildren(el("span", {}, "card SNR"),
      el("meter", { min: "0", max: "1", low: "0.5", optimum: "1",
        value: String(confidence ?? 0) }),
      el("span", {}, confidence == null ? "no card measured" : percent(confidence)));
    if (parts.mode !== status.mode) {
      parts.mode = status.mode;
      const next = status.mode === "AUTONOMOUS" ? "ADVISORY" : "AUTONOMOUS";
      parts.shadow.replaceChildren(el("p", {}, `Mode: ${status.mode}` +
        (status.mode === "ADVISORY" ? " (shadow: proposals wait for approval)" : "")),
      can("operator") && ["ADVISORY", "AUTONOMOUS"].includes(status.mode)
        ? el("button", { type: "button", "data-action": "shadow", onclick: async () => {
          await api(`/assets/${status.id}/mode`, { method: "PUT", body: { mode: next } });
        } }, `Switch to ${next}`) : "");
    }
    const reason = status.controller.reason;
    if (reason && state.log[0]?.reason !== reason) {
      state.log.unshift({ time: status.time, reason });
      state.log.length = Math.min(state.log.length, 50);
      parts.log.replaceChildren(...state.log.map((entry) => el("li", {},
        `${new Date(entry.time * 1000).toISOString().slice(11, 19)}  ${entry.reason}`)));
    }
  },
};

function pumpJack() {
  // a walking beam rocking once per stroke (CSS animation period 60 / SPM s)
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 200 120");
  svg.setAttribute("class", "pump");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "pumping unit at the live SPM");
  svg.innerHTML = `<style>.beam{transform-origin:100px 40px;animation:rock var(--stroke,7.5s)
    ease-in-out infinite alternate}@keyframes rock{from{transform:rotate(-12deg)}to{transform:
    rotate(12deg)}}</style><line x1="100" y1="40" x2="100" y2="115" stroke="#5b6573"
    stroke-width="6"/><g class="beam"><rect x="20" y="34" width="160" height="12" fill="#1f5fbf"/>
    <path d="M180 30 q14 10 0 20" fill="#1f5fbf"/><line x1="186" y1="40" x2="186" y2="115"
    stroke="#1d2430" stroke-width="2"/></g><rect x="10" y="112" width="180" height="6"
    fill="#5b6573"/>`;
  return svg;
}

// -- asphalt terminal -------------------------------------------------------------------

const terminal = {
  build(node) {
    const parts = { plan: el("div", { class: "plan", role: "img",
      "aria-label": "tank farm plan view" }), loop: el("div"), stations: el("div") };
    node.replaceChildren(el("h2", {}, "Terminal"),
      el("div", { class: "charts" }, parts.plan, el("div", {}, parts.loop, parts.stations)));
    return parts;
  },
  paint(parts, view) {
    const pad = 4;
    const xs = view.tanks.flatMap((t) => [t.x - t.diameter / 2, t.x + t.diameter / 2]);
    const ys = view.tanks.flatMap((t) => [t.y - t.diameter / 2, t.y + t.diameter / 2]);
    const [x0, x1, y0, y1] = [Math.min(...xs) - pad, Math.max(...xs) + pad,
      Math.min(...ys) - pad, Math.max(...ys) + pad];
    const colour = (T) => {  // 140 °C blue .. 180 °C red: the storage band
      const f = Math.min(1, Math.max(0, (T - 413.15) / 40));
      return `hsl(${220 - 220 * f}, 70%, 50%)`;
    };
    const tanks = view.tanks.map((t) => {
      const r = t.diameter / 2;
      const full = t.level / t.shell_height;
      return `<g data-tank="${t.tag}"><title>tank ${t.tag}: ${display(t.T_bulk, "K")}, level
        ${t.level.toFixed(2)} m of ${t.shell_height} m, ${(t.viscosity * 1e6).toFixed(0)} cSt,
        coil ${(t.coil_duty / 1e3).toFixed(0)} kW</title>
        <circle cx="${t.x}" cy="${-t.y}" r="${r}" fill="${colour(t.T_bulk)}" stroke="#1d2430"
          stroke-width="0.3"/>
        <rect x="${t.x + r * 0.55}" y="${-t.y - r * 0.6}" width="${r * 0.2}" height="${r * 1.2}"
          fill="#fff" stroke="#1d2430" stroke-width="0.2"/>
        <rect x="${t.x + r * 0.55}" y="${-t.y - r * 0.6 + r * 1.2 * (1 - full)}"
          width="${r * 0.2}" height="${r * 1.2 * full}" fill="#1d2430"/>
        <text x="${t.x - r * 0.3}" y="${-t.y - r * 0.15}" font-size="${r * 0.32}"
          text-anchor="middle" fill="#fff">${t.tag}</text>
        <text x="${t.x - r * 0.3}" y="${-t.y + r * 0.25}" font-size="${r * 0.22}"
          text-anchor="middle" fill="#fff">${display(t.T_bulk, "K")}</text>
        ${t.draw > 0 ? `<text x="${t.x - r * 0.3}" y="${-t.y + r * 0.6}" font-size="${r * 0.2}"
          text-anchor="middle" fill="#fff">▼ loading</text>` : ""}</g>`;
    }).join("");
    parts.plan.innerHTML = `<svg viewBox="${x0} ${-y1} ${x1 - x0} ${y1 - y0 + 6}" width="100%"
      style="max-height:26rem">${tanks}<line x1="${x0 + 1}" x2="${x0 + 11}" y1="${-y0 + 3}"
      y2="${-y0 + 3}" stroke="#1d2430" stroke-width="0.6"/><text x="${x0 + 12}" y="${-y0 + 4}"
      font-size="2.5">10 m</text></svg>`;
    parts.loop.replaceChildren(el("h2", {}, "Hot-oil loop"), facts([
      ["supply", display(view.T_supply, "K")], ["return", display(view.T_return, "K")],
      ["circulation", `${view.loop_flow.toFixed(2)} kg/s (bypass ${view.bypass_flow.toFixed(2)})`],
      ["heater duty", `${(view.heater_duty / 1e6).toFixed(3)} MW`],
      ...view.tanks.map((t) => [`coil ${t.tag}`, `${t.coil_flow.toFixed(2)} kg/s, ` +
        `${(t.coil_duty / 1e3).toFixed(0)} kW`]),
    ]));
    const drawing = view.tanks.filter((t) => t.draw > 0);
    parts.stations.replaceChildren(el("h2", {}, "Loading stations"),
      el("p", {}, `${drawing.length} of ${view.stations} pumps loading` +
        (drawing.length ? `: ${drawing.map((t) => `tank ${t.tag} ${t.draw.toFixed(1)} kg/s`)
          .join(", ")}` : "")),
      el("p", { class: "muted" }, drawing.length >= view.stations
        ? "▲ every station busy: the interlock refuses another draw" : "interlock: clear"));
  },
};

// -- single tank, pipeline, smelter, pump -----------------------------------------------

const tank = {
  build(node) {
    const parts = { facts: el("div") };
    node.replaceChildren(el("h2", {}, "Heated tank"), parts.facts);
    return parts;
  },
  paint(parts, view) {
    parts.facts.replaceChildren(facts([
      ["bulk", display(view.T_bulk, "K")], ["coil return", display(view.T_return, "K")],
      ["hot-oil supply", display(view.T_supply, "K")],
      ["hot-oil flow", `${view.oil_flow.toFixed(3)} kg/s`],
      ["coil duty", `${(view.coil_duty / 1e3).toFixed(1)} kW`]]));
  },
};

const pipeline = {
  build(node, status) {
    const parts = { profile: chartNode("pressure profile against MAOP"),
      dra: chartNode("DRA concentration by leg"), facts: el("div"),
      plan: el("div", { class: "plan-7d", "aria-label": "7-day injection plan" }),
      planChart: chartNode("7-day injection plan") };
    node.replaceChildren(el("h2", {}, "DRA pipeline"),
      el("div", { class: "charts" }, parts.profile, parts.dra, parts.facts),
      el("h2", {}, "7-day injection plan"), el("div", { class: "charts" }, parts.planChart,
        parts.plan));
    showPlan(parts, status.id);
    return parts;
  },
  paint(parts, view) {
    const km = view.stations.map((s) => s.chainage / 1000);
    lines(parts.profile, "Pressure profile", ["chainage", "km"], ["pressure", "Pa"], [
      { name: "discharge", mode: "lines+markers", x: km,
        y: view.stations.map((s) => s.discharge_pressure) },
      { name: "suction", mode: "lines+markers", x: km,
        y: view.stations.map((s) => s.suction_pressure) },
      { name: "MAOP", dash: "dash", x: km, y: view.stations.map((s) => s.maop) },
    ]);
    const labels = view.stations.flatMap((s) => s.dra_concentration.map(
      (_, j) => `leg ${s.number}.${j + 1}`));
    bars(parts.dra, "DRA by leg segment", labels,
      view.stations.flatMap((s) => s.dra_concentration), "ppm");
    parts.facts.replaceChildren(facts([
      ["flow", `${(view.flow * 3600).toFixed(0)} m³/h`],
      ["nominated", view.nominated_flow == null ? "—"
        : `${(view.nominated_flow * 3600).toFixed(0)} m³/h`],
      ["cost rate", `${view.cost_rate.toFixed(0)} ${view.currency}/h`],
      ...view.stations.map((s) => [`station ${s.number}`, `speed ${(100 * s.pump_speed)
        .toFixed(1)} %, ${(s.power / 1e6).toFixed(2)} MW, DRA ${s.dra_injection.toFixed(1)} L/h`]),
    ]));
  },
};

/** The latest stored plan (GET /assets/{id}/plan) against its baselines; an operator
 *  computes a new one or approves it. */
async function showPlan(parts, id) {
  const path = `/assets/${encodeURIComponent(id)}/plan`;
  let plan = null;
  try {
    plan = await api(path);
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  const act = (label, verb, url) => can("operator") ? el("button", { type: "button",
    "data-action": verb, onclick: async (event) => {
      event.target.disabled = true;
      try { await api(url, { method: "POST" }); } catch (error) { alert(error.message); }
      showPlan(parts, id);
    } }, label) : "";
  if (plan == null) {
    parts.plan.replaceChildren(el("p", {}, "No plan yet."),
      act("Compute 7-day plan", "plan", path));
    return;
  }
  const hours = plan.hours.map((h) => h.hour);
  const skids = plan.hours[0].dra_injection.map((_, i) => ({ name: `skid ${i + 1} (L/h)`,
    x: hours, y: plan.hours.map((h) => h.dra_injection[i]) }));
  lines(parts.planChart, `Plan v${plan.version}: DRA injection by hour`, ["hour", ""],
    ["injection", "L/h"], skids);
  const money = (v) => v == null ? "infeasible" : `${v.toFixed(0)} ${plan.currency}`;
  parts.plan.replaceChildren(facts([
    ["version", `${plan.version} (${plan.status}${plan.approved_by ? ` by ${plan.approved_by}`
      : ""})`],
    ["cost", money(plan.cost)],
    ["constant DRA", money(plan.baselines.constant_dra.cost)],
    ["no DRA", money(plan.baselines.no_dra.cost)],
    ["solver", `${plan.solver_status}, ${plan.compute_time_s.toFixed(1)} s`]]),
  plan.status === "approved" ? "" : act("Approve", "approve", `${path}/${plan.version}/approve`),
  act("Compute again", "plan", path));
}

const smelter = {
  build(node) {
    const parts = { voltage: chartNode("cell voltage breakdown"), facts: el("div") };
    node.replaceChildren(el("h2", {}, "Smelting cell"),
      el("div", { class: "charts" }, parts.voltage, parts.facts));
    return parts;
  },
  paint(parts, view) {
    stacked(parts.voltage, "Cell voltage", "V", view.voltage);
    parts.facts.replaceChildren(facts([
      ["bath", display(view.bath_temperature, "K")], ["liquidus", display(view.liquidus, "K")],
      ["superheat", `${view.superheat.toFixed(1)} K`],
      ["alumina", `${(100 * view.alumina).toFixed(2)} %`],
      ["ACD", `${(100 * view.acd).toFixed(2)} cm`],
      ["specific energy", `${(view.specific_energy / 3.6e6).toFixed(2)} kWh/kg Al`],
      ["anode effect", view.anode_effect_indicator > 0.5 ? "▲ risk" : "no"]]));
  },
};

const pump = {
  build(node) {
    const parts = { head: chartNode("head curves and operating point"),
      efficiency: chartNode("efficiency curves"), health: el("div") };
    node.replaceChildren(el("h2", {}, "Centrifugal pump"),
      el("div", { class: "charts" }, parts.head, parts.efficiency, parts.health));
    return parts;
  },
  paint(parts, view) {
    lines(parts.head, "Head", ["flow", "m3/s"], ["head", "m"], [
      { name: "as degraded", x: view.head.x, y: view.head.y },
      { name: "new", x: view.head_new.x, y: view.head_new.y, dash: "dot" },
      { name: "system", x: view.system.x, y: view.system.y, dash: "dash" },
      { name: "operating point", mode: "markers", x: [view.flow], y: [view.operating_head],
        symbol: "diamond", size: 12 },
    ]);
    lines(parts.efficiency, "Efficiency", ["flow", "m3/s"], ["efficiency", "1"], [
      { name: "as degraded", x: view.efficiency.x, y: view.efficiency.y },
      { name: "new", x: view.efficiency_new.x, y: view.efficiency_new.y, dash: "dot" },
      { name: "operating point", mode: "markers", x: [view.flow],
        y: [view.operating_efficiency], symbol: "diamond", size: 12 },
    ]);
    parts.health.replaceChildren(el("h2", {}, "Health"), el("table", {}, el("tbody", {},
      ...view.health.map((f) => el("tr", { class: f.alarm ? "alarm high" : "" },
        el("th", { scope: "row" }, `${f.alarm ? "▲ " : "✓ "}${f.check}`),
        el("td", {}, f.reason))))));
  },
};
