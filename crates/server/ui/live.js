// The small live chart beside a streaming answer: the machine's power (from the server's
// meter, `/api/live`) and this answer's tokens per second, sampled three times a second.

import { getJson } from "./api.js";

const SAMPLE_MS = 300;
const POINTS = 100; // the last thirty seconds of a long answer
const WIDTH = 240;
const HEIGHT = 48;
const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

/** Points of one series scaled into the chart: the whole answer so far, across its width. */
function polylinePoints(values) {
  const top = Math.max(...values.filter((v) => v !== null), 1e-9);
  const step = WIDTH / Math.max(values.length - 1, 1);
  return values
    .map((v, i) => (v === null ? null : `${(i * step).toFixed(1)},${(HEIGHT - 2 - (v / top) * (HEIGHT - 4)).toFixed(1)}`))
    .filter(Boolean)
    .join(" ");
}

export class LiveChart {
  constructor(container) {
    this.container = container;
    this.svg = svgElement("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "live-chart", role: "img" });
    this.powerLine = svgElement("polyline", { class: "live-power" });
    this.speedLine = svgElement("polyline", { class: "live-speed" });
    this.svg.append(this.powerLine, this.speedLine);
    this.caption = document.createElement("span");
    this.caption.className = "live-caption";
    this.powerText = document.createElement("span");
    this.powerText.className = "live-power-key";
    this.speedText = document.createElement("span");
    this.speedText.className = "live-speed-key";
    this.caption.append(this.powerText, " · ", this.speedText);
    container.replaceChildren(this.svg, this.caption);
    this.timer = null;
  }

  /** Starts sampling for a new answer. */
  start() {
    this.stop();
    this.watts = [];
    this.speeds = [];
    this.source = "";
    this.tokensSinceSample = 0;
    this.lastSample = performance.now();
    this.container.hidden = false;
    this.samples = 0;
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  /** One more piece of the answer arrived (Ollama's streams send one token per line). */
  token() {
    this.tokensSinceSample += 1;
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async sample() {
    const now = performance.now();
    const speed = (this.tokensSinceSample * 1000) / Math.max(now - this.lastSample, 1);
    this.tokensSinceSample = 0;
    this.lastSample = now;
    let watts = null;
    try {
      const live = await getJson("api/live");
      watts = typeof live.watts === "number" ? live.watts : null;
      this.source = live.source || "";
    } catch {
      // A missed reading leaves a gap in the line; the answer itself goes on.
    }
    if (this.timer === null) return;
    this.push(this.watts, watts);
    this.push(this.speeds, speed);
    this.samples += 1;
    this.draw();
  }

  push(series, value) {
    series.push(value);
    if (series.length > POINTS) series.shift();
  }

  draw() {
    this.powerLine.setAttribute("points", polylinePoints(this.watts));
    this.speedLine.setAttribute("points", polylinePoints(this.speeds));
    const watts = this.watts.at(-1);
    const speed = this.speeds.at(-1);
    const power = watts === null || watts === undefined ? "– W" : `${watts.toFixed(1)} W${this.source ? ` ${this.source}` : ""}`;
    this.powerText.textContent = `power ${power}`;
    this.speedText.textContent = `${speed.toFixed(1)} tok/s`;
    this.svg.dataset.samples = String(this.samples);
  }
}
