// One conversation on screen: its messages rendered, a question sent and its answer
// streamed in, stopped, regenerated, or a question edited and sent again.

import { KeyNeeded, stream } from "./api.js";
import { requestOptions, titleFrom } from "./conversations.js";
import { renderMarkdown } from "./markdown.js";
import { answerStats, describeStats, statParts } from "./stats.js";

/** Enter sends; Shift+Enter is a new line, and Enter that ends an input method's composition is not a send. */
const sends = (event) => event.key === "Enter" && !event.shiftKey && !event.isComposing;

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

/** Markdown into `element`, with a copy button on each code block. */
function showMarkdown(element, text) {
  element.innerHTML = renderMarkdown(text);
  for (const pre of element.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const copy = button("Copy", "Copy the code", () => navigator.clipboard?.writeText(code.textContent));
    copy.className = "copy-code";
    pre.append(copy);
  }
}

function statsElement(stats) {
  const line = document.createElement("div");
  line.className = "stats";
  line.title = describeStats(stats);
  for (const [label, value] of statParts(stats)) {
    const part = document.createElement("span");
    part.className = "stat";
    part.dataset.stat = label;
    const name = document.createElement("span");
    name.className = "stat-label";
    name.textContent = label;
    part.append(name, ` ${value}`);
    line.append(part);
  }
  if (stats.source) {
    const badge = document.createElement("span");
    badge.className = `badge ${stats.source}`;
    badge.textContent = stats.source;
    line.append(badge);
  }
  if (stats.stopped) {
    const badge = document.createElement("span");
    badge.className = "badge stopped";
    badge.textContent = "stopped";
    line.append(badge);
  }
  return line;
}

export class ChatView {
  /**
   * `conversation()` gives the conversation shown; `save()` keeps it; `onError` is told of
   * failures the user must act on (a key to give); `live` charts the answer as it streams.
   */
  constructor(root, { conversation, save, onError, live }) {
    this.list = root.querySelector("#messages");
    this.form = root.querySelector("#composer");
    this.input = root.querySelector("#prompt");
    this.sendButton = root.querySelector("#send");
    this.stopButton = root.querySelector("#stop");
    this.conversation = conversation;
    this.save = save;
    this.onError = onError;
    this.live = live;
    this.controller = null;

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (sends(event)) {
        event.preventDefault();
        this.submit();
      }
    });
    this.stopButton.addEventListener("click", () => this.stop());
  }

  get busy() {
    return this.controller !== null;
  }

  submit() {
    const text = this.input.value;
    if (!text.trim() || this.busy) return;
    this.input.value = "";
    this.ask(text);
  }

  /** Cancels the answer streaming now: the server stops generating when the connection goes. */
  stop() {
    this.controller?.abort();
  }

  render() {
    const conversation = this.conversation();
    const messages = conversation ? conversation.messages : [];
    this.list.replaceChildren(...messages.map((m, i) => this.messageElement(m, i, messages.length)));
    this.list.scrollTop = this.list.scrollHeight;
  }

  messageElement(message, index, count) {
    const article = document.createElement("article");
    article.className = `message ${message.role}`;
    article.dataset.index = String(index);
    const role = document.createElement("div");
    role.className = "role";
    role.textContent = message.role === "user" ? "You" : message.model || "assistant";
    const content = document.createElement("div");
    content.className = "content";
    if (message.role === "user") {
      content.textContent = message.content;
    } else {
      if (message.thinking) article.append(this.thinkingElement(message.thinking));
      showMarkdown(content, message.content);
    }
    article.prepend(role);
    article.append(content);
    if (message.error) {
      const error = document.createElement("div");
      error.className = "error";
      error.textContent = message.error;
      article.append(error);
    }
    if (message.stats) article.append(statsElement(message.stats));
    article.append(this.actions(message, index, count));
    return article;
  }

  thinkingElement(text) {
    const details = document.createElement("details");
    details.className = "thinking";
    const summary = document.createElement("summary");
    summary.textContent = "Thinking";
    const body = document.createElement("div");
    body.textContent = text;
    details.append(summary, body);
    return details;
  }

  actions(message, index, count) {
    const bar = document.createElement("div");
    bar.className = "actions";
    if (this.busy) return bar;
    if (message.role === "user") {
      bar.append(button("Edit", "Edit and resend this message", () => this.edit(index)));
    } else if (index === count - 1) {
      bar.append(button("Regenerate", "Regenerate this answer", () => this.regenerate()));
    }
    return bar;
  }

  /** Puts a question back in an editor; sending it drops everything after it. */
  edit(index) {
    const conversation = this.conversation();
    const article = this.list.querySelector(`article[data-index="${index}"]`);
    const editor = document.createElement("textarea");
    editor.className = "edit-box";
    editor.value = conversation.messages[index].content;
    const resend = () => {
      if (!editor.value.trim()) return;
      conversation.messages.splice(index);
      this.ask(editor.value);
    };
    editor.addEventListener("keydown", (event) => {
      if (sends(event)) {
        event.preventDefault();
        resend();
      } else if (event.key === "Escape") {
        this.render();
      }
    });
    const bar = document.createElement("div");
    bar.className = "actions";
    bar.append(button("Send", "Send the edited message", resend), button("Cancel", "Cancel editing", () => this.render()));
    article.querySelector(".content").replaceWith(editor);
    article.querySelector(".actions").replaceWith(bar);
    editor.focus();
  }

  regenerate() {
    const conversation = this.conversation();
    if (conversation.messages.at(-1)?.role === "assistant") conversation.messages.pop();
    this.answer();
  }

  ask(text) {
    const conversation = this.conversation();
    if (conversation.messages.length === 0) conversation.title = titleFrom(text);
    conversation.messages.push({ role: "user", content: text });
    this.answer();
  }

  /** Streams the answer to the conversation as it stands. */
  async answer() {
    const conversation = this.conversation();
    if (!conversation.model) {
      this.onError(new Error("Pick a model first (the Models tab pulls one)."));
      return;
    }
    const history = conversation.messages.map(({ role, content }) => ({ role, content }));
    const messages = conversation.system ? [{ role: "system", content: conversation.system }, ...history] : history;
    const answer = { role: "assistant", content: "", model: conversation.model };
    conversation.messages.push(answer);
    conversation.updated = Date.now();
    this.controller = new AbortController();
    this.setBusy(true);
    this.render();
    const article = this.list.lastElementChild;
    const content = article.querySelector(".content");
    this.live.start();
    const started = performance.now();
    let ttft = null;
    let last = null;
    let pieces = 0;
    let drawn = false;
    const draw = () => {
      drawn = false;
      showMarkdown(content, answer.content);
      this.list.scrollTop = this.list.scrollHeight;
    };
    try {
      await stream("api/chat", {
        body: { model: conversation.model, messages, stream: true, options: requestOptions(conversation.options) },
        signal: this.controller.signal,
        onLine: (line) => {
          const piece = line.message?.content || "";
          if (line.message?.thinking) answer.thinking = (answer.thinking || "") + line.message.thinking;
          if (piece) {
            if (ttft === null) ttft = performance.now() - started;
            answer.content += piece;
            pieces += 1;
            this.live.token();
            // One render per frame however fast tokens come.
            if (!drawn) {
              drawn = true;
              requestAnimationFrame(draw);
            }
          }
          if (line.done) last = line;
        },
      });
      answer.stats = answerStats(last || {}, ttft, false);
    } catch (error) {
      if (error.name === "AbortError") {
        answer.stats = answerStats({ eval_count: pieces }, ttft, true);
      } else {
        answer.error = error.message;
        if (error instanceof KeyNeeded) this.onError(error);
      }
    } finally {
      this.live.stop();
      this.controller = null;
      this.setBusy(false);
      this.save();
      this.render();
    }
  }

  setBusy(busy) {
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    this.form.classList.toggle("busy", busy);
  }
}
