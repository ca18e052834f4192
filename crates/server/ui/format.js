// Numbers as the page shows them: a figure only when there is one (a finite number), so a
// missing field never prints as "NaN", "null" or "undefined".

export const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

/** `value` with `digits` decimals, or null. */
export const fixed = (value, digits) => (isNumber(value) ? value.toFixed(digits) : null);

/** `value` to `digits` significant digits, without trailing zeros, or null. */
export const significant = (value, digits) => (isNumber(value) ? String(Number(value.toPrecision(digits))) : null);

/** A size in bytes in decimal units (as `hearth list` and Ollama show them), or "–". */
export function bytes(count) {
  if (!isNumber(count)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}
