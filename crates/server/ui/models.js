// The models tab: what the store holds and what is loaded, pulling with a progress bar,
// and deleting.

import { getJson, send, stream } from "./api.js";

function formatBytes(bytes) {
  if (typeof bytes !== "number") return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const VERDICTS = { fits: "fits", fits_after_unloading: "after unloading", does_not_fit: "does not fit" };

/** The server's verdict on whether a model would load now, with the bytes behind it. */
function fitCell(fit) {
  if (!fit) return cell("–");
  const td = cell(VERDICTS[fit.verdict] || fit.verdict, `fit ${fit.verdict}`);
  td.title = `needs ${formatBytes(fit.needed)}; ${formatBytes(fit.available)} available; other loaded models hold ${formatBytes(fit.loaded)}`;
  return td;
}

/** The store's models with their details, whether each is loaded, and its context length. */
export async function listModels() {
  const [tags, running] = await Promise.all([getJson("api/tags"), getJson("api/ps")]);
  const loaded = new Map(running.models.map((m) => [m.name, m]));
  const shown = await Promise.all(
    tags.models.map((m) =>
      getJson("api/show", { method: "POST", body: { model: m.name } }).catch(() => null),
    ),
  );
  return tags.models.map((m, i) => ({
    name: m.name,
    size: m.size,
    quantization: m.details?.quantization_level || "",
    parameters: m.details?.parameter_size || "",
    family: m.details?.family || "",
    context: shown[i]?.context_length ?? null,
    fit: shown[i]?.fit ?? null,
    loaded: loaded.get(m.name) || null,
  }));
}

export class ModelsView {
  /** `onChange` is told whenever the list of models may have changed. */
  constructor(root, { onChange, onError }) {
    this.table = root.querySelector("#models-table tbody");
    this.empty = root.querySelector("#models-empty");
    this.pullForm = root.querySelector("#pull-form");
    this.pullName = root.querySelector("#pull-name");
    this.progress = root.querySelector("#pull-progress");
    this.pullStatus = root.querySelector("#pull-status");
    this.onChange = onChange;
    this.onError = onError;
    this.pullForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.pull(this.pullName.value.trim());
    });
  }

  /** Lists the models again; `null` when the server could not say. */
  async refresh() {
    let models;
    try {
      models = await listModels();
    } catch (error) {
      this.onError(error);
      return null;
    }
    this.table.replaceChildren(...models.map((m) => this.row(m)));
    this.empty.hidden = models.length > 0;
    return models;
  }

  row(model) {
    const tr = document.createElement("tr");
    tr.dataset.model = model.name;
    const state = model.loaded ? `loaded, ${formatBytes(model.loaded.size)} in memory` : "on disk";
    tr.append(
      cell(model.name, "model-name"),
      cell(formatBytes(model.size), "number"),
      cell(model.quantization),
      cell(model.parameters, "number"),
      cell(model.context === null ? "–" : model.context.toLocaleString("en"), "number"),
      cell(state, model.loaded ? "loaded" : ""),
      fitCell(model.fit),
    );
    const actions = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${model.name}`);
    remove.addEventListener("click", () => this.remove(model.name));
    actions.append(remove);
    tr.append(actions);
    return tr;
  }

  async remove(name) {
    if (!confirm(`Delete ${name} from this machine?`)) return;
    try {
      await send("api/delete", { method: "DELETE", body: { model: name } });
    } catch (error) {
      this.onError(error);
    }
    await this.refresh();
    this.onChange();
  }

  async pull(name) {
    if (!name) return;
    const button = this.pullForm.querySelector("button");
    button.disabled = true;
    this.progress.hidden = false;
    this.progress.value = 0;
    this.progress.removeAttribute("value"); // indeterminate until sizes are known
    this.pullStatus.textContent = "starting…";
    try {
      await stream("api/pull", {
        body: { model: name, stream: true },
        onLine: (line) => {
          if (line.total > 0 && typeof line.completed === "number") {
            this.progress.max = line.total;
            this.progress.value = line.completed;
            const percent = Math.floor((100 * line.completed) / line.total);
            this.pullStatus.textContent = `${line.status}: ${percent}% of ${formatBytes(line.total)}`;
          } else {
            this.pullStatus.textContent = line.status;
          }
          if (line.status === "success") {
            this.progress.max = 1;
            this.progress.value = 1;
            this.pullStatus.textContent = `${name}: pulled`;
          }
        },
      });
      this.pullName.value = "";
    } catch (error) {
      this.pullStatus.textContent = `pull failed: ${error.message}`;
      this.onError(error);
    } finally {
      button.disabled = false;
    }
    await this.refresh();
    this.onChange();
  }
}
