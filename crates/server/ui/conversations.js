// Conversations kept in this browser's storage (nowhere else), and their export as files.

import { describeStats } from "./stats.js";

const STORAGE = "hearth.conversations";

/** The sampling settings a new conversation starts with: the server's defaults apply when empty. */
export const DEFAULT_OPTIONS = { temperature: "", top_p: "", top_k: "", num_predict: "", seed: "", num_ctx: "" };

export function loadAll() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE) || "[]");
    return Array.isArray(saved) ? saved.filter((c) => c && Array.isArray(c.messages)) : [];
  } catch {
    // A damaged entry (edited by hand, say) must not keep the page from opening.
    return [];
  }
}

export function saveAll(conversations) {
  localStorage.setItem(STORAGE, JSON.stringify(conversations));
}

export function create(model) {
  return {
    id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    title: "New conversation",
    model: model || "",
    system: "",
    options: { ...DEFAULT_OPTIONS },
    messages: [],
    updated: Date.now(),
  };
}

/** The title a conversation takes from its first question. */
export function titleFrom(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New conversation";
}

/** The options as the server takes them: numbers only, unset ones left out. */
export function requestOptions(options) {
  const out = {};
  for (const [name, value] of Object.entries(options || {})) {
    if (value === "" || value === null || value === undefined) continue;
    const number = Number(value);
    if (Number.isFinite(number)) out[name] = number;
  }
  return out;
}

function fileName(conversation, extension) {
  const stem = conversation.title.replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-|-$/g, "").slice(0, 40);
  return `${stem || "conversation"}.${extension}`;
}

function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function exportJson(conversation) {
  download(fileName(conversation, "json"), "application/json", JSON.stringify(conversation, null, 2));
}

export function toMarkdown(conversation) {
  const parts = [`# ${conversation.title}`, "", `Model: ${conversation.model || "(none)"}`];
  if (conversation.system) parts.push("", "## System", "", conversation.system);
  for (const message of conversation.messages) {
    parts.push("", `## ${message.role === "user" ? "User" : "Assistant"}`, "", message.content);
    if (message.stats) parts.push("", `*${describeStats(message.stats)}*`);
  }
  return `${parts.join("\n")}\n`;
}

export function exportMarkdown(conversation) {
  download(fileName(conversation, "md"), "text/markdown", toMarkdown(conversation));
}
