// Charts on Plotly (the copy bundled in the installed ``plotly`` package, served by the
// app): one function per chart shape, each redrawn in place with Plotly.react.
import { convert } from "./display.js";

const CONFIG = { displaylogo: false, responsive: true };
const BASE = { margin: { l: 64, r: 16, t: 36, b: 48 }, font: { size: 12 },
  legend: { orientation: "h", y: -0.2 } };

/** A chart container that keeps its Plotly state between redraws. */
export function chartNode(label) {
  const node = document.createElement("div");
  node.className = "chart";
  node.setAttribute("role", "img");
  node.setAttribute("aria-label", label);
  return node;
}

/** Lines (and markers) in the user's units: ``series`` of {name, x, y, mode, dash}. */
export function lines(node, title, [xLabel, xUnit], [yLabel, yUnit], series) {
  const [, xShown] = convert(0, xUnit);
  const [, yShown] = convert(0, yUnit);
  const traces = series.map((s) => ({
    name: s.name, type: "scatter", mode: s.mode || "lines",
    x: xUnit ? s.x.map((v) => convert(v, xUnit)[0]) : s.x,
    y: s.y.map((v) => (v == null ? null : convert(v, yUnit)[0])),
    line: { dash: s.dash || "solid", width: s.width || 2 },
    marker: { size: s.size || 9, symbol: s.symbol || "circle" },
  }));
  window.Plotly.react(node, traces, { ...BASE, title: { text: title },
    xaxis: { title: { text: xUnit ? `${xLabel} (${xShown})` : xLabel } },
    yaxis: { title: { text: `${yLabel} (${yShown})` } } }, CONFIG);
}

/** One stacked bar: ``parts`` {name: value} in ``unit``, with the total in the title. */
export function stacked(node, title, unit, parts) {
  const traces = Object.entries(parts).map(([name, value]) => ({
    name, type: "bar", x: [title], y: [value], text: [`${name} ${value.toFixed(3)}`],
    textposition: "inside",
  }));
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  window.Plotly.react(node, traces, { ...BASE, barmode: "stack",
    title: { text: `${title}: ${total.toFixed(3)} ${unit}` },
    yaxis: { title: { text: unit } } }, CONFIG);
}

/** Bars ``values`` against ``labels``. */
export function bars(node, title, labels, values, unit) {
  window.Plotly.react(node, [{ type: "bar", x: labels, y: values }],
    { ...BASE, title: { text: title }, yaxis: { title: { text: unit } } }, CONFIG);
}

/** A gauge 0..1 as %, with ``target`` drawn as a ghost needle (a threshold line). */
export function gauge(node, title, value, target, warnBelow) {
  window.Plotly.react(node, [{
    type: "indicator", mode: "gauge+number", value: 100 * value,
    number: { suffix: " %" }, title: { text: title },
    gauge: { axis: { range: [0, 100] }, bar: { color: "#1f5fbf" },
      steps: [{ range: [0, 100 * warnBelow], color: "#fde2dd" }],
      threshold: target == null ? undefined
        : { line: { color: "#5b6573", width: 4 }, thickness: 0.9, value: 100 * target } },
  }], { ...BASE, margin: { l: 24, r: 24, t: 48, b: 8 } }, CONFIG);
}
