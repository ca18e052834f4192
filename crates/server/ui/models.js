// The models tab: what the store holds and what is loaded, pulling with a progress bar,
// and deleting.

import { getJson, send, stream } from "./api.js";
import { bytes } from "./format.js";

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const VERDICTS = { fits: "fits", fits_after_unloading: "after unloading", does_not_fit: "does not fit" };

/** The server's verdict on whether a model would load now, with the bytes behind it. */
function fitCell(fit) {
  if (!fit) return cell("–", "fit");
  const td = cell(VERDICTS[fit.verdict] || fit.verdict, `fit ${fit.verdict}`);
  td.title = `needs ${bytes(fit.needed)}; ${bytes(fit.available)} available; other loaded models hold ${bytes(fit.loaded)}`;
  return td;
}

/** The store's models with their details and whether each is loaded: two quick requests. */
export async function listModels() {
  const [tags, running] = await Promise.all([getJson("api/tags"), getJson("api/ps")]);
  const loaded = new Map(running.models.map((m) => [m.name, m]));
  return tags.models.map((m) => ({
    name: m.name,
    size: m.size,
    quantization: m.details?.quantization_level || "",
    parameters: m.details?.parameter_size || "",
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
    // Context and fit need each model's header read; the list does not wait for them.
    for (const row of this.table.children) this.describe(row);
    return models;
  }

  /** Fills in a row's context length and the server's fit verdict (`/api/show`). */
  async describe(row) {
    const shown = await getJson("api/show", { method: "POST", body: { model: row.dataset.model } }).catch(() => null);
    const context = shown?.context_length;
    row.querySelector("td.context").textContent = typeof context === "number" ? context.toLocaleString("en") : "–";
    row.querySelector("td.fit").replaceWith(fitCell(shown?.fit));
  }

  row(model) {
    const tr = document.createElement("tr");
    tr.dataset.model = model.name;
    const state = model.loaded ? `loaded, ${bytes(model.loaded.size)} in memory` : "on disk";
    tr.append(
      cell(model.name, "model-name"),
      cell(bytes(model.size), "number"),
      cell(model.quantization),
      cell(model.parameters, "number"),
      cell("…", "number context"),
      cell(state, model.loaded ? "loaded" : ""),
      cell("…", "fit"),
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
            this.pullStatus.textContent = `${line.status}: ${percent}% of ${bytes(line.total)}`;
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
