// The figures beside an answer: read from the server's last stream line and this page's
// own clock, and said in words.

import { fixed, significant } from "./format.js";

/**
 * The figures of one answer. `last` is the final line of Ollama's chat stream (counts,
 * durations in nanoseconds, hearth's energy fields); `ttftMs` is measured here, from
 * sending to the first piece of text, so it includes everything the user waited for.
 */
export function answerStats(last, ttftMs, stopped) {
  const seconds = (nanos) => (typeof nanos === "number" && nanos > 0 ? nanos / 1e9 : null);
  const evalSeconds = seconds(last.eval_duration);
  return {
    prompt_tokens: last.prompt_eval_count ?? null,
    answer_tokens: last.eval_count ?? null,
    ttft_ms: ttftMs,
    tokens_per_second: evalSeconds && last.eval_count ? last.eval_count / evalSeconds : null,
    joules: last.energy_joules ?? null,
    joules_per_token: last.energy_per_token_joules ?? null,
    watts: last.energy_watts ?? null,
    source: last.energy_source ?? null,
    co2e_grams: last.energy_co2e_grams ?? null,
    cost: last.energy_cost ?? null,
    currency: last.energy_currency ?? null,
    stopped: Boolean(stopped),
  };
}

/** The stats as labelled parts, in the order they are shown; parts without a figure are left out. */
export function statParts(stats) {
  const parts = [
    ["prompt", stats.prompt_tokens !== null ? `${stats.prompt_tokens} tok` : null],
    ["answer", stats.answer_tokens !== null ? `${stats.answer_tokens} tok` : null],
    ["TTFT", fixed(stats.ttft_ms, 0) && `${fixed(stats.ttft_ms, 0)} ms`],
    ["speed", fixed(stats.tokens_per_second, 1) && `${fixed(stats.tokens_per_second, 1)} tok/s`],
    ["energy", significant(stats.joules, 3) && `${significant(stats.joules, 3)} J`],
    ["per token", significant(stats.joules_per_token, 3) && `${significant(stats.joules_per_token, 3)} J/tok`],
    ["power", fixed(stats.watts, 1) && `${fixed(stats.watts, 1)} W`],
    ["carbon", significant(stats.co2e_grams, 2) && `${significant(stats.co2e_grams, 2)} g CO₂e`],
    ["cost", significant(stats.cost, 2) && `${significant(stats.cost, 2)} ${stats.currency || ""}`.trim()],
  ];
  return parts.filter(([, text]) => text);
}

/** One line for exports and tooltips. */
export function describeStats(stats) {
  const text = statParts(stats)
    .map(([label, value]) => `${label} ${value}`)
    .join(" · ");
  const source = stats.source ? ` (${stats.source})` : "";
  return `${text}${source}${stats.stopped ? " · stopped" : ""}`;
}
