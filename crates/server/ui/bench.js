// Owns the bench report view: a `hearth bench --json` report as tables and an energy-against-speed chart.

import { fixed, isNumber } from "./format.js";

const DASH = '–';
const SVG_NS = 'http://www.w3.org/2000/svg';
const SERIES_COUNT = 8; // the stylesheet colours series-0 … series-7
const CHART = { width: 640, height: 360, left: 64, right: 24, top: 16, bottom: 48 };

// serde_json writes NaN and infinities as null, so any figure may be missing.
const dec = (v, digits) => fixed(v, digits) ?? DASH;
const tps = (v) => dec(v, 1);
const ms = (v) => (isNumber(v) ? v.toFixed(Math.abs(v) < 100 ? 1 : 0) : DASH);
// Joules per token span orders of magnitude between models: keep significant digits, not decimals.
const sig3 = (v) => (isNumber(v) ? (v === 0 || Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(3)) : DASH);
const count = (v) => (isNumber(v) ? String(v) : DASH);
const str = (v) => (typeof v === 'string' && v !== '' ? v : DASH);
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v) => (Array.isArray(v) ? v.filter(isObject) : []);
const seriesClass = (index) => `series-${index % SERIES_COUNT}`;
const round1 = (v) => Math.round(v * 10) / 10;
const joules = (energy) => sig3(energy?.joules_per_generated_token?.median);

/** Renders a parsed `hearth bench --json` report into `container` (emptied first). Throws Error with a one-line message a user understands if `report` is not such a report. */
export function renderBenchReport(report, container) {
  container.replaceChildren();
  check(report);
  const targets = report.targets.map((target, index) => ({ target, index }));
  container.append(
    el(
      'section',
      { class: 'bench-report' },
      header(report),
      fixedTable(report, targets),
      ...targets.map(loadTable),
      promptsTable(targets),
      qualityTable(targets),
      chart(chartPoints(targets)),
    ),
  );
}

function check(report) {
  const not = 'This file is not a `hearth bench --json` report';
  if (!isObject(report)) throw new Error(`${not}: it is not a JSON object.`);
  if (!isObject(report.machine)) throw new Error(`${not}: it has no "machine".`);
  if (!Array.isArray(report.targets)) throw new Error(`${not}: it has no "targets" list.`);
  if (!report.targets.every((t) => typeof t?.name === 'string')) throw new Error(`${not}: a target has no name.`);
}

// append() turns strings into text nodes, so nothing from the file is ever parsed as markup;
// null children (parts a report lacks) are dropped rather than shown as "null".
function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value != null) node.setAttribute(name, String(value));
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

const el = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);

function header(report) {
  const m = report.machine;
  const simd = Array.isArray(m.simd) ? m.simd.filter((s) => typeof s === 'string').join(' ') : '';
  const workloads = Array.isArray(report.workloads) ? report.workloads.join(', ') : '';
  const parts = {
    'bench-machine': [
      str(m.cpu),
      `${count(m.physical_cores)} cores, ${count(m.logical_cores)} logical`,
      `${dec(m.memory_gib, 1)} GiB`,
      `${dec(m.memory_bandwidth_gb_s, 1)} GB/s`,
      simd || DASH,
      str(m.os),
    ],
    'bench-versions': [`hearth ${str(m.hearth)}`, str(m.llama_cpp)],
    'bench-settings': [
      `${count(report.prompt_tokens)} prompt / ${count(report.generated_tokens)} generated tokens`,
      `depth ${count(report.depth)}`,
      `${count(report.repetitions)} repetition${report.repetitions === 1 ? '' : 's'}`,
      `${count(report.threads)} threads`,
      `batch ${count(report.batch_size)}`,
      `KV cache ${str(report.kv_cache_type)}`,
      `workloads ${workloads || DASH}`,
    ],
  };
  const spans = Object.entries(parts).map(([cls, texts]) => el('span', { class: cls }, texts.join(' · ')));
  return el('p', { class: 'bench-header' }, ...spans);
}

// Columns from `textColumns` on hold figures: class "number", as in the app's other tables, right-aligns them.
function table(caption, headers, rows, textColumns) {
  const head = el('tr', null, ...headers.map((h) => el('th', { scope: 'col' }, h)));
  const body = rows.map((cells) =>
    el('tr', null, ...cells.map((cell, i) => el('td', i >= textColumns ? { class: 'number' } : null, cell))),
  );
  return el('table', { class: 'bench-table' }, el('caption', null, caption), el('thead', null, head), el('tbody', null, ...body));
}

// The swatch ties a table row to its colour in the chart; an endpoint shows its URL on hover.
function targetCell({ target, index }) {
  const url = typeof target.url === 'string' ? target.url : null;
  const endpoint = target.kind === 'endpoint' ? el('span', { class: 'badge endpoint' }, 'endpoint') : null;
  const swatch = el('span', { class: `bench-swatch ${seriesClass(index)}`, 'aria-hidden': 'true' });
  return el('span', { class: 'bench-target', title: url }, swatch, target.name, endpoint);
}

function spreadCell(spread, format) {
  if (!isNumber(spread?.median)) return DASH;
  return el('span', { title: `min ${format(spread.min)}, max ${format(spread.max)}` }, format(spread.median));
}

const SOURCES = { measured: 'from a hardware energy counter', estimated: 'from a power model, not measured' };

function sourceBadge(energy) {
  const source = energy?.source;
  if (!Object.hasOwn(SOURCES, source)) return str(source);
  // The same badge classes as the chat's energy figures, so both read alike.
  return el('span', { class: `badge ${source}`, title: SOURCES[source] }, source);
}

function fixedTable(report, targets) {
  const rows = targets
    .filter(({ target }) => target.fixed)
    .map((entry) => {
      const { fixed: f, model, peak_rss_mib: rss } = entry.target;
      return [
        targetCell(entry),
        str(model?.quantization),
        str(model?.parameters),
        spreadCell(f.prompt_tokens_per_second, tps),
        spreadCell(f.generation_tokens_per_second, tps),
        ms(f.ttft_ms?.median),
        ms(f.warm_ttft_ms?.median),
        joules(f.energy),
        dec(f.energy?.watts?.median, 1),
        sourceBadge(f.energy),
        dec(rss, 0),
      ];
    });
  if (!rows.length) return null;
  const caption = `fixed: ${count(report.prompt_tokens)} prompt tokens, ${count(report.generated_tokens)} generated`;
  const headers = ['target', 'quant', 'params', 'prompt tok/s', 'gen tok/s', 'TTFT ms', 'warm TTFT ms', 'J/token', 'W', 'energy', 'peak RSS MiB'];
  return table(caption, headers, rows, 3);
}

function levelLabel(level) {
  if (isNumber(level.concurrency)) return `c=${level.concurrency}`;
  return isNumber(level.rate) ? `${level.rate} req/s` : DASH;
}

function loadTable(entry) {
  const rows = list(entry.target.load).map((l) => [
    levelLabel(l),
    count(l.requests),
    // Hovering the failures shows why the first one failed.
    typeof l.first_error === 'string' ? el('span', { title: l.first_error }, count(l.failed)) : count(l.failed),
    tps(l.generation_tokens_per_second),
    dec(l.requests_per_second, 2),
    ms(l.ttft_ms?.p50),
    ms(l.ttft_ms?.p95),
    ms(l.inter_token_ms?.p50),
    ms(l.inter_token_ms?.p95),
    ms(l.e2e_ms?.p50),
    joules(l.energy),
    sourceBadge(l.energy),
  ]);
  if (!rows.length) return null;
  const headers = ['level', 'requests', 'failed', 'gen tok/s', 'req/s', 'TTFT p50 ms', 'TTFT p95 ms', 'ITL p50 ms', 'ITL p95 ms', 'e2e p50 ms', 'J/token', 'energy'];
  return table(el('span', null, 'load: ', targetCell(entry)), headers, rows, 1);
}

function promptsTable(targets) {
  const entries = targets.filter(({ target }) => target.prompts);
  const rows = entries.map((entry) => {
    const r = entry.target.prompts;
    return [
      targetCell(entry),
      count(r.requests),
      spreadCell(r.ttft_ms, ms),
      ms(r.warm_ttft_ms?.median),
      spreadCell(r.e2e_ms, ms),
      spreadCell(r.prompt_tokens_per_second, tps),
      spreadCell(r.generation_tokens_per_second, tps),
      ms(r.inter_token_ms?.p50),
      ms(r.inter_token_ms?.p95),
      joules(r.energy),
      sourceBadge(r.energy),
    ];
  });
  if (!rows.length) return null;
  const headers = ['target', 'requests', 'TTFT ms', 'warm TTFT ms', 'e2e ms', 'prompt tok/s', 'gen tok/s', 'ITL p50 ms', 'ITL p95 ms', 'J/token', 'energy'];
  return table(`prompts: ${str(entries[0].target.prompts.prompts)}, medians over requests`, headers, rows, 1);
}

const plusMinus = (value, error, digits) => (isNumber(value) ? `${dec(value, digits)} ± ${dec(error, digits)}` : DASH);

function qualityTable(targets) {
  const rows = targets
    .filter(({ target }) => target.perplexity || target.divergence)
    .map((entry) => {
      const { perplexity: p, divergence: d, model } = entry.target;
      return [
        targetCell(entry),
        str(model?.quantization),
        str(d?.reference),
        dec(model?.file_mib, 0),
        plusMinus(p?.value, p?.uncertainty, 3),
        count(p?.chunks),
        plusMinus(d?.kl_mean, d?.kl_uncertainty, 5),
        dec(d?.kl_max, 3),
        isNumber(d?.same_top_token) ? `${(d.same_top_token * 100).toFixed(1)}%` : DASH,
      ];
    });
  if (!rows.length) return null;
  const headers = ['target', 'quant', 'KL reference', 'file MiB', 'perplexity', 'chunks', 'KL mean', 'KL max', 'same top token'];
  return table('quality: perplexity, and KL divergence from the reference', headers, rows, 3);
}

// One point per target's fixed run (its real prompts when it has none, as `--plot` does) and per load level.
function chartPoints(targets) {
  return targets.flatMap(({ target, index }) => {
    const base = target.fixed ?? target.prompts;
    const runs = [
      [target.fixed ? target.name : `${target.name} prompts`, 'fixed', base?.energy, base?.generation_tokens_per_second?.median],
      ...list(target.load).map((l) => [`${target.name} ${levelLabel(l)}`, 'load', l.energy, l.generation_tokens_per_second]),
    ];
    return runs
      .map(([label, kind, energy, y]) => ({ index, label, kind, x: energy?.joules_per_generated_token?.median, y }))
      .filter((p) => isNumber(p.x) && isNumber(p.y));
  });
}

// Axis bounds on round steps (1, 2 or 5 times a power of ten, about five of them) with a margin
// so no point sits on an edge, and never below zero for positive figures, as `--plot` draws them.
function bounds(values) {
  const low = Math.min(...values);
  const high = Math.max(...values);
  const margin = Math.max(high - low, Math.abs(high) * 0.05) * 0.2;
  const from = low >= 0 ? Math.max(low - margin, 0) : low - margin;
  const raw = Math.max(high + margin - from, 1e-9) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = magnitude * [1, 2, 5, 10].find((f) => raw / magnitude <= f * 1.000001);
  return { from: Math.floor(from / step) * step, to: Math.ceil((high + margin) / step) * step, step };
}

function ticks({ from, to, step }) {
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const n = Math.max(1, Math.round((to - from) / step));
  return Array.from({ length: n + 1 }, (_, i) => ({ value: from + i * step, text: (from + i * step).toFixed(digits) }));
}

function chart(points) {
  if (!points.length) return null;
  const { width, height, left, right, top, bottom } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const xs = bounds(points.map((p) => p.x));
  const ys = bounds(points.map((p) => p.y));
  const px = (v) => round1(left + ((v - xs.from) / (xs.to - xs.from)) * plotWidth);
  const py = (v) => round1(top + plotHeight - ((v - ys.from) / (ys.to - ys.from)) * plotHeight);

  const grid = svg('g', { class: 'grid' });
  const axis = svg('g', { class: 'axis' });
  for (const { value, text } of ticks(xs)) {
    const x = px(value);
    grid.append(svg('line', { x1: x, x2: x, y1: top, y2: top + plotHeight }));
    axis.append(svg('text', { x, y: top + plotHeight + 16, 'text-anchor': 'middle' }, text));
  }
  for (const { value, text } of ticks(ys)) {
    const y = py(value);
    grid.append(svg('line', { x1: left, x2: left + plotWidth, y1: y, y2: y }));
    axis.append(svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end' }, text));
  }
  axis.append(
    svg('rect', { class: 'frame', x: left, y: top, width: plotWidth, height: plotHeight, fill: 'none' }),
    svg('text', { class: 'label', x: left + plotWidth / 2, y: height - 8, 'text-anchor': 'middle' }, 'J per generated token'),
    svg('text', { class: 'label', x: -(top + plotHeight / 2), y: 16, transform: 'rotate(-90)', 'text-anchor': 'middle' }, 'generation tok/s'),
  );
  const attrs = { class: 'bench-chart', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'energy against speed' };
  return el(
    'figure',
    { class: 'bench-figure' },
    svg('svg', attrs, grid, axis, marks(points, px, py)),
    el('figcaption', null, 'energy against speed: up and to the left is better'),
  );
}

function marks(points, px, py) {
  const group = svg('g', { class: 'points' });
  const spots = points.map((p) => [px(p.x), py(p.y)]);
  // Points count as taken space, so labels avoid covering them as well as each other.
  const taken = spots.map(([x, y]) => ({ x0: x - 5, x1: x + 5, y0: y - 5, y1: y + 5 }));
  const overlaps = (a) => taken.some((b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1);
  points.forEach((p, i) => {
    const [x, y] = spots[i];
    const series = seriesClass(p.index);
    const label = place(p.label.length * 6.5, x, y, overlaps);
    taken.push(label.box);
    group.append(
      svg(
        'circle',
        { class: `point point-${p.kind} ${series}`, cx: x, cy: y, r: p.kind === 'fixed' ? 5 : 4 },
        svg('title', null, `${p.label}: ${sig3(p.x)} J/token, ${tps(p.y)} tok/s`),
      ),
      svg('text', { class: `label point-label ${series}`, x: label.x, y: label.y, 'text-anchor': label.anchor }, p.label),
    );
  });
  return group;
}

// A label's spot beside its point: on the preferred side (the left near the right edge, so it stays
// inside), else the other, then ever further above or below, so crowded points stay readable.
// Widths are guessed from the length: nothing is laid out yet.
function place(width, x, y, overlaps) {
  const leftFirst = x > CHART.width * 0.65;
  let first;
  for (let i = 0; i < 16; i++) {
    const ty = round1(y + 4 + (i % 2 ? -12 : 12) * Math.ceil(i / 2));
    for (const left of [leftFirst, !leftFirst]) {
      const tx = left ? x - 8 : x + 8;
      const box = { x0: left ? tx - width : tx, x1: left ? tx : tx + width, y0: ty - 10, y1: ty + 2 };
      const spot = { x: tx, y: ty, anchor: left ? 'end' : 'start', box };
      first ??= spot;
      const inside = box.x0 >= 0 && box.x1 <= CHART.width && box.y0 >= 0 && box.y1 <= CHART.height - CHART.bottom;
      if (inside && !overlaps(box)) return spot;
    }
  }
  return first;
}
