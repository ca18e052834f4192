// The page's wiring: tabs, the conversation list and settings, the model picker, the key
// dialog, the benchmark file, and the keys that work everywhere.

import { KeyNeeded, getJson, setApiKey } from "./api.js";
import { renderBenchReport } from "./bench.js";
import { ChatView } from "./chat.js";
import * as store from "./conversations.js";
import { LiveChart } from "./live.js";
import { ModelsView } from "./models.js";

const CURRENT = "hearth.current";
const $ = (selector) => document.querySelector(selector);

const conversations = store.loadAll();
let currentId = localStorage.getItem(CURRENT);
let modelNames = [];
// Until the server has listed its models, a conversation's model is not known to be missing.
let modelsListed = false;

function current() {
  let conversation = conversations.find((c) => c.id === currentId);
  if (!conversation) {
    conversation = conversations[0] || newConversation();
    currentId = conversation.id;
  }
  return conversation;
}

function newConversation() {
  const conversation = store.create(defaultModel());
  conversations.unshift(conversation);
  return conversation;
}

function defaultModel() {
  return conversations.find((c) => c.model)?.model || modelNames[0] || "";
}

function save() {
  localStorage.setItem(CURRENT, currentId);
  store.saveAll(conversations);
  renderList();
}

const live = new LiveChart($("#live"));
const chat = new ChatView($("#chat-view"), { conversation: current, save, onError: report, live });
const models = new ModelsView($("#models-view"), { onChange: refreshModels, onError: report });

/** Tells the user about a failure; asks for a key when that is what is missing. */
function report(error) {
  if (error instanceof KeyNeeded) {
    askForKey(error.message);
    return;
  }
  const notice = $("#notice");
  notice.textContent = error.message;
  notice.hidden = false;
  clearTimeout(report.timer);
  report.timer = setTimeout(() => (notice.hidden = true), 6000);
}

function askForKey(message) {
  const dialog = $("#key-dialog");
  if (dialog.open) return;
  dialog.querySelector("p").textContent = `${message}. The key is kept in this browser only.`;
  $("#key-input").value = "";
  dialog.showModal();
}

$("#key-dialog").addEventListener("close", () => {
  if ($("#key-dialog").returnValue !== "save") return;
  setApiKey($("#key-input").value.trim());
  start();
});

function renderList() {
  const list = $("#conversation-list");
  const items = conversations
    .slice()
    .sort((a, b) => b.updated - a.updated)
    .map((c) => {
      const li = document.createElement("li");
      li.classList.toggle("current", c.id === currentId);
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.textContent = c.title;
      open.addEventListener("click", () => select(c.id));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "icon";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Delete the conversation ${c.title}`);
      remove.addEventListener("click", () => removeConversation(c.id));
      li.append(open, remove);
      return li;
    });
  list.replaceChildren(...items);
}

function select(id) {
  if (chat.busy) chat.stop();
  currentId = id;
  document.body.classList.remove("sidebar-open");
  showConversation();
  save();
}

function removeConversation(id) {
  const index = conversations.findIndex((c) => c.id === id);
  if (index < 0) return;
  if (id === currentId && chat.busy) chat.stop();
  conversations.splice(index, 1);
  if (id === currentId) currentId = null;
  showConversation();
  save();
}

/** The settings, model and messages of the conversation shown. */
function showConversation() {
  const conversation = current();
  $("#system").value = conversation.system;
  for (const input of document.querySelectorAll("[data-option]")) {
    input.value = conversation.options?.[input.dataset.option] ?? "";
  }
  fillModelPicker();
  chat.render();
}

function fillModelPicker() {
  const picker = $("#model-picker");
  const conversation = current();
  const names = modelNames.includes(conversation.model) || !conversation.model ? modelNames : [conversation.model, ...modelNames];
  const options = names.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = modelNames.includes(name) || !modelsListed ? name : `${name} (not in the store)`;
    return option;
  });
  if (!conversation.model) {
    const none = document.createElement("option");
    none.value = "";
    none.textContent = names.length ? "choose a model" : "no models: pull one";
    options.unshift(none);
  }
  picker.replaceChildren(...options);
  picker.value = conversation.model;
}

async function refreshModels() {
  const listed = await models.refresh();
  if (listed === null) return;
  modelNames = listed.map((m) => m.name);
  modelsListed = true;
  const conversation = current();
  if (!conversation.model && modelNames.length) {
    conversation.model = modelNames[0];
    save();
  }
  fillModelPicker();
}

$("#model-picker").addEventListener("change", (event) => {
  current().model = event.target.value;
  save();
});
$("#system").addEventListener("input", (event) => {
  current().system = event.target.value;
  save();
});
for (const input of document.querySelectorAll("[data-option]")) {
  input.addEventListener("input", () => {
    const conversation = current();
    conversation.options = { ...store.DEFAULT_OPTIONS, ...conversation.options, [input.dataset.option]: input.value };
    save();
  });
}
$("#new-chat").addEventListener("click", () => {
  const conversation = newConversation();
  select(conversation.id);
  $("#prompt").focus();
});
$("#export-json").addEventListener("click", () => store.exportJson(current()));
$("#export-md").addEventListener("click", () => store.exportMarkdown(current()));
$("#menu").addEventListener("click", () => document.body.classList.toggle("sidebar-open"));

function showTab(name) {
  for (const tab of ["chat", "models", "bench"]) {
    $(`#tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`#${tab}-view`).hidden = tab !== name;
  }
  if (name === "models") models.refresh();
}
for (const tab of ["chat", "models", "bench"]) $(`#tab-${tab}`).addEventListener("click", () => showTab(tab));

$("#bench-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  const error = $("#bench-error");
  error.hidden = true;
  if (!file) return;
  try {
    renderBenchReport(JSON.parse(await file.text()), $("#bench-output"));
  } catch (e) {
    $("#bench-output").replaceChildren();
    error.textContent = `${file.name}: ${e.message}`;
    error.hidden = false;
  }
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && chat.busy) {
    event.preventDefault();
    chat.stop();
  }
});

async function start() {
  try {
    const version = await getJson("api/version");
    $("#server-state").textContent = `v${version.version}`;
    await refreshModels();
  } catch (error) {
    report(error);
  }
}

showConversation();
save();
start();
