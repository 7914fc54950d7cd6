// Values arrive in SI; the user chooses SI or plant units (°C for K, bar for Pa).
const KEY = "twinloop.units";
const CONVERSIONS = {
  K: { unit: "°C", value: (v) => v - 273.15, std: (s) => s },
  Pa: { unit: "bar", value: (v) => v / 1e5, std: (s) => s / 1e5 },
};

export function units() {
  return localStorage.getItem(KEY) || "display";
}

export function setUnits(choice) {
  localStorage.setItem(KEY, choice);
}

/** [value, unit] in the user's units. */
export function convert(value, unit) {
  const conversion = units() === "display" ? CONVERSIONS[unit] : null;
  return conversion ? [conversion.value(value), conversion.unit] : [value, unit];
}

function number(value) {
  if (value == null || !Number.isFinite(value)) return "—";
  const size = Math.abs(value);
  return size !== 0 && (size >= 1e5 || size < 1e-3) ? value.toExponential(3)
    : value.toPrecision(4).replace(/\.?0+$/, "");
}

/** "433.2 °C ± 0.1" in the user's units. */
export function display(value, unit, std) {
  const conversion = units() === "display" ? CONVERSIONS[unit] : null;
  const shown = conversion ? conversion.value(value ?? NaN) : value;
  const label = conversion ? conversion.unit : unit;
  const spread = std == null ? "" : ` ± ${number(conversion ? conversion.std(std) : std)}`;
  return `${number(shown)}${spread} ${label}`.trim();
}
