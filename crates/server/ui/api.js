// The page's only way to the server: JSON requests and NDJSON streams with the user's key.

const KEY_STORAGE = "hearth.apiKey";

/** Raised when the server wants an API key (none given, or the one given was refused). */
export class KeyNeeded extends Error {
  constructor(message) {
    super(message || "this server needs an API key");
    this.name = "KeyNeeded";
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

// The page lives at <base>/ui/, so the API is one level up: this keeps it working behind a
// proxy that serves hearth under a path of its own.
function url(path) {
  return new URL(`../${path.replace(/^\//, "")}`, location.href);
}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

/** The message of an error answer in any of the server's dialects, or the status line. */
async function errorMessage(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    const error = body.error;
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string") return error.message;
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** Sends a request and returns the response once its status is known to be good. */
export async function send(path, { method = "GET", body, signal } = {}) {
  const response = await fetch(url(path), {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (response.status === 401) throw new KeyNeeded(await errorMessage(response));
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

/** A request whose answer is one JSON value. */
export async function getJson(path, options) {
  const response = await send(path, options);
  return response.json();
}

/**
 * A request whose answer is newline-delimited JSON (Ollama's streams): calls `onLine` with
 * each object as it arrives. An object carrying `error` ends the stream with that error.
 */
export async function stream(path, { body, signal, onLine }) {
  const response = await send(path, { method: "POST", body, signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  const take = (line) => {
    if (!line.trim()) return;
    const value = JSON.parse(line);
    if (value.error) throw new Error(value.error);
    onLine(value);
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    lines.forEach(take);
  }
  take(pending + decoder.decode());
}
