// Model answers (Markdown) into HTML that is safe for innerHTML, and code in them coloured.

// All model text goes through esc(); the only tags in the output are the ones written here.
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]);

// Past this nesting, lists and quotes stay text, so hostile input can't exhaust the stack.
const MAX_DEPTH = 16;
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*))?$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const LIST = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+|$)/;
const BLANK = /^\s*$/;

/** Markdown (what chat models write) to HTML that is safe to assign to innerHTML. */
export function renderMarkdown(text) {
  return renderBlocks(String(text ?? "").split(/\r\n?|\n/), false, 0);
}

function renderBlocks(lines, tight, depth) {
  const out = [];
  for (let i = 0; i < lines.length; ) {
    if (BLANK.test(lines[i])) { i++; continue; }
    for (const parse of [fence, heading, rule, quote, list, table, paragraph]) {
      const block = parse(lines, i, tight, depth);
      if (block) { out.push(block[0]); i = block[1]; break; }
    }
  }
  return out.join("");
}

// ```ls``` on one line is inline code, not a fence.
function fenceOpen(line) {
  const m = FENCE.exec(line);
  return m && !(m[2][0] === "`" && m[3].includes("`")) ? m : null;
}

// An unclosed fence runs to the end: the answer is still streaming in.
function fence(lines, i) {
  const m = fenceOpen(lines[i]);
  if (!m) return null;
  const [, indent, marker, info] = m;
  const lang = info.trim().split(/\s/)[0].toLowerCase().replace(/[^\w+#.-]/g, "");
  const body = [];
  let j = i + 1;
  for (; j < lines.length; j++) {
    const close = FENCE_CLOSE.exec(lines[j]);
    if (close && close[1][0] === marker[0] && close[1].length >= marker.length) break;
    body.push(stripIndent(lines[j], indent.length));
  }
  const name = esc(lang || "text");
  const code = highlight(body.join("\n"), lang);
  return [`<pre data-lang="${name}"><code class="lang-${name}">${code}</code></pre>`, j + 1];
}

function heading(lines, i) {
  const m = HEADING.exec(lines[i]);
  if (!m) return null;
  // "## Title ##" loses its closing hashes; "## C#" keeps its own.
  let text = (m[2] ?? "").trim();
  let end = text.length;
  while (end > 0 && text[end - 1] === "#") end--;
  if (end === 0 || text[end - 1] === " ") text = text.slice(0, end).trim();
  return [`<h${m[1].length}>${renderInline(text)}</h${m[1].length}>`, i + 1];
}

const rule = (lines, i) => (RULE.test(lines[i]) ? ["<hr>", i + 1] : null);

function quote(lines, i, tight, depth) {
  if (depth >= MAX_DEPTH || !QUOTE.test(lines[i])) return null;
  const inner = [];
  let j = i;
  while (j < lines.length && QUOTE.test(lines[j])) inner.push(lines[j++].replace(QUOTE, ""));
  return [`<blockquote>${renderBlocks(inner, false, depth + 1)}</blockquote>`, j];
}

// Items are markers at the list's own indent, give or take a space; lines indented two or
// more past it belong to the item, which is how lists nest.
function list(lines, i, tight, depth) {
  const first = LIST.exec(lines[i]);
  if (depth >= MAX_DEPTH || !first) return null;
  const base = first[1].length;
  const ordered = /\d/.test(first[2]);
  const isItem = (m) => m !== null && m[1].length < base + 2 && /\d/.test(m[2]) === ordered;
  const inside = (line) => indentOf(line) >= base + 2;
  const items = [];
  let j = i;
  while (j < lines.length) {
    const m = LIST.exec(lines[j]);
    const item = items.at(-1);
    if (isItem(m)) {
      items.push({ indent: m[0].length, lines: [lines[j++].slice(m[0].length)] });
    } else if (BLANK.test(lines[j])) {
      let k = j;
      while (k < lines.length && BLANK.test(lines[k])) k++;
      if (k < lines.length && inside(lines[k])) item.lines.push(...lines.slice(j, k));
      else if (k === lines.length || !isItem(LIST.exec(lines[k]))) break;
      j = k;
    } else if (inside(lines[j]) || !startsBlock(lines, j)) {
      // Indented, or a wrapped line the model didn't indent.
      item.lines.push(stripIndent(lines[j++], item.indent));
    } else {
      break;
    }
  }
  // An item with blank lines inside gets paragraphs; a compact one doesn't.
  const body = items.map((item) => {
    const compact = !item.lines.some((line) => BLANK.test(line));
    return `<li>${renderBlocks(item.lines, compact, depth + 1)}</li>`;
  });
  const start = parseInt(first[2], 10);
  const open = !ordered ? "<ul>" : start === 1 ? "<ol>" : `<ol start="${start}">`;
  return [`${open}${body.join("")}</${ordered ? "ol" : "ul"}>`, j];
}

const indentOf = (line) => line.length - line.trimStart().length;

function stripIndent(line, n) {
  let k = 0;
  while (k < n && line[k] === " ") k++;
  return line.slice(k);
}

function table(lines, i) {
  if (!isTableStart(lines, i)) return null;
  const aligns = splitRow(lines[i + 1]).map(alignment);
  const row = (line, tag) => {
    const cells = splitRow(line);
    return `<tr>${aligns.map((a, k) => `<${tag}${a}>${renderInline(cells[k] ?? "")}</${tag}>`).join("")}</tr>`;
  };
  const rows = [];
  let j = i + 2;
  while (j < lines.length && lines[j].includes("|") && !BLANK.test(lines[j])) {
    rows.push(row(lines[j++], "td"));
  }
  const head = `<thead>${row(lines[i], "th")}</thead>`;
  return [`<table>${head}<tbody>${rows.join("")}</tbody></table>`, j];
}

function isTableStart(lines, i) {
  const sep = lines[i + 1];
  if (!lines[i].includes("|") || !sep?.includes("|") || !sep.includes("-")) return false;
  const cells = splitRow(sep);
  return cells.every((c) => /^:?-+:?$/.test(c)) && cells.length === splitRow(lines[i]).length;
}

// "\|" is a literal pipe, even inside `code`, as in GFM.
function splitRow(line) {
  const row = line.trim().replace(/^\|/, "").replace(/(^|[^\\])\|$/, "$1");
  const cells = [""];
  for (let k = 0; k < row.length; k++) {
    if (row[k] === "|") cells.push("");
    else cells[cells.length - 1] += row[k] === "\\" && row[k + 1] === "|" ? row[++k] : row[k];
  }
  return cells.map((cell) => cell.trim());
}

// Classes, because the page's policy allows no style attributes.
function alignment(sep) {
  const [left, right] = [sep.startsWith(":"), sep.endsWith(":")];
  const side = left && right ? "center" : right ? "right" : left ? "left" : "";
  return side && ` class="align-${side}"`;
}

function startsBlock(lines, j) {
  const line = lines[j];
  return [HEADING, RULE, QUOTE, LIST].some((re) => re.test(line)) || Boolean(fenceOpen(line)) ||
    isTableStart(lines, j);
}

// Models break lines on purpose, so a single newline stays a <br>.
function paragraph(lines, i, tight) {
  let j = i + 1;
  while (j < lines.length && !BLANK.test(lines[j]) && !startsBlock(lines, j)) j++;
  const html = renderInline(lines.slice(i, j).map((line) => line.trim()).join("\n"));
  return [tight ? html : `<p>${html}</p>`, j];
}

/* Inline: one left-to-right scan into tokens, then CommonMark-style emphasis matching. */

const PUNCT = /[!-/:-@[-`{-~]/;
const ANY_PUNCT = /[\p{P}\p{S}]/u;
const SPACE = /\s/;
const SAFE_URL = /^(?:https?:\/\/[^\s/]|mailto:\S)/i;
const BARE_URL = /https?:\/\/[^\s<>"'`]+/y;
const ANGLE = /<(?:br[ \t]*\/?|((?:https?:\/\/|mailto:)[^\s<>]+))>/iy;
// One level of parentheses in the URL (Wikipedia), then an optional title.
const DESTINATION = /\(([^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?: +(?:"[^"]*"|'[^']*'))? *\)/y;

const INLINE = {
  "\\": (src, i) => (PUNCT.test(src[i + 1] ?? "") ? [esc(src[i + 1]), i + 2] : null),
  "`": codeSpan,
  "*": delimiter,
  _: delimiter,
  "~": delimiter,
  "[": (src, i, st) => link(src, i, st, i),
  // Images become links: the page loads nothing from elsewhere.
  "!": (src, i, st) => (src[i + 1] === "[" ? link(src, i + 1, st, i) : null),
  "<": angle,
  h: bareUrl,
  "\n": (src, i) => ["<br>", i + 1],
};

function renderInline(src, inLink = false) {
  const st = { inLink, brackets: inLink ? new Map() : matchBrackets(src), noTicks: new Set() };
  const toks = [];
  let plain = 0;
  for (let i = 0; i < src.length; ) {
    const token = INLINE[src[i]]?.(src, i, st);
    if (!token) { i++; continue; }
    if (plain < i) toks.push(esc(src.slice(plain, i)));
    toks.push(token[0]);
    i = plain = token[1];
  }
  if (plain < src.length) toks.push(esc(src.slice(plain)));
  matchEmphasis(toks);
  return toks.map((t) => (typeof t === "string" ? t : t.closeTags + t.ch.repeat(t.n) + t.openTags)).join("");
}

function codeSpan(src, i, st) {
  let n = 1;
  while (src[i + n] === "`") n++;
  const end = findTicks(src, i + n, n, st);
  if (end < 0) return ["`".repeat(n), i + n];
  let body = src.slice(i + n, end).replaceAll("\n", " ");
  if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ") && body.trim()) {
    body = body.slice(1, -1);
  }
  return [`<code>${esc(body)}</code>`, end + n];
}

// A run of exactly n backticks. Remembering misses keeps many stray backticks linear.
function findTicks(src, from, n, st) {
  if (st.noTicks.has(n)) return -1;
  const ticks = "`".repeat(n);
  for (let at = src.indexOf(ticks, from); at >= 0; at = src.indexOf(ticks, from)) {
    let run = n;
    while (src[at + run] === "`") run++;
    if (run === n) return at;
    from = at + run;
  }
  st.noTicks.add(n);
  return -1;
}

// CommonMark's flanking rules; "_" also won't open or close inside a word, so
// snake_case_names survive.
function delimiter(src, i) {
  const ch = src[i];
  let n = 1;
  while (src[i + n] === ch) n++;
  if (ch === "~" && n !== 2) return [ch.repeat(n), i + n];
  const before = src[i - 1] ?? " ";
  const after = src[i + n] ?? " ";
  const [punctBefore, punctAfter] = [ANY_PUNCT.test(before), ANY_PUNCT.test(after)];
  const left = !SPACE.test(after) && (!punctAfter || SPACE.test(before) || punctBefore);
  const right = !SPACE.test(before) && (!punctBefore || SPACE.test(after) || punctAfter);
  const open = left && (ch !== "_" || !right || punctBefore);
  const close = right && (ch !== "_" || !left || punctAfter);
  return [{ ch, n, open, close, openTags: "", closeTags: "" }, i + n];
}

// Each closer takes the nearest opener of its kind; openers skipped over stay text. That
// keeps the tags well nested and the work linear.
function matchEmphasis(toks) {
  const stack = [];
  const waiting = { "*": 0, _: 0, "~": 0 };
  for (const t of toks) {
    if (typeof t === "string") continue;
    while (t.close && t.n && waiting[t.ch]) {
      let k = stack.length - 1;
      while (stack[k].ch !== t.ch) k--;
      const opener = stack[k];
      for (const skipped of stack.splice(k + 1)) waiting[skipped.ch]--;
      const use = opener.n >= 2 && t.n >= 2 ? 2 : 1;
      const tag = t.ch === "~" ? "del" : use === 2 ? "strong" : "em";
      opener.n -= use;
      t.n -= use;
      opener.openTags = `<${tag}>${opener.openTags}`;
      t.closeTags += `</${tag}>`;
      if (!opener.n) { stack.pop(); waiting[t.ch]--; }
    }
    if (t.open && t.n) { stack.push(t); waiting[t.ch]++; }
  }
}

function matchBrackets(src) {
  const pairs = new Map();
  const open = [];
  for (let k = src.indexOf("["); k >= 0 && k < src.length; k++) {
    if (src[k] === "\\") k++;
    else if (src[k] === "[") open.push(k);
    else if (src[k] === "]" && open.length) pairs.set(open.pop(), k);
  }
  return pairs;
}

// An unsafe link shows its whole source as text, so the reader sees what was there.
function link(src, i, st, start) {
  const close = st.brackets.get(i);
  if (st.inLink || close === undefined) return null;
  DESTINATION.lastIndex = close + 1;
  const dest = DESTINATION.exec(src);
  if (!dest) return null;
  const end = DESTINATION.lastIndex;
  const text = renderInline(src.slice(i + 1, close), true) || esc(dest[1]);
  return [anchor(dest[1], text) ?? esc(src.slice(start, end)), end];
}

// Web and mail only: javascript:, data:, relative paths and the rest stay text.
function anchor(url, html) {
  if (!SAFE_URL.test(url) || /[\s\x00-\x1f\x7f]/.test(url)) return null;
  return `<a href="${esc(url)}" rel="noopener noreferrer" target="_blank">${html}</a>`;
}

// <br> is common in table cells and <https://…> is Markdown's autolink; other "<" is text.
function angle(src, i, st) {
  ANGLE.lastIndex = i;
  const m = ANGLE.exec(src);
  if (!m) return null;
  if (!m[1]) return ["<br>", ANGLE.lastIndex];
  const a = !st.inLink && anchor(m[1], esc(m[1]));
  return a ? [a, ANGLE.lastIndex] : null;
}

// Trailing punctuation ends the sentence, not the URL; ")" stays only if the URL opened one.
function bareUrl(src, i, st) {
  if (st.inLink || /\w/.test(src[i - 1] ?? "")) return null;
  BARE_URL.lastIndex = i;
  let url = BARE_URL.exec(src)?.[0] ?? "";
  let unopened = url.split(")").length - url.split("(").length;
  while (".,:;!?*_~".includes(url.at(-1)) || (url.endsWith(")") && unopened-- > 0)) url = url.slice(0, -1);
  const a = anchor(url, esc(url));
  return a ? [a, i + url.length] : null;
}

/* Highlighting: one small scanner, driven by what each language family looks like. */

const LANGS = new Map();
function define(names, spec, keywords) {
  const full = { quotes: "\"'", line: [], block: [], ...spec, words: new Set(keywords.split(" ")) };
  // Characters other than word characters that can begin a token; the rest is skipped fast.
  const markers = [...full.line, ...full.block.map(([open]) => open)];
  full.starts = full.quotes + (full.charQuote ? "'" : "") + markers.map((m) => m[0]).join("");
  for (const name of names.split(" ")) LANGS.set(name, full);
}
const C = { line: ["//"], block: [["/*", "*/"]], types: true };
const HASH = { line: ["#"] };
const JS_WORDS = "as async await break case catch class const continue default delete do else enum export extends false finally for from function if import in instanceof interface let new null of return static super switch this throw true try type typeof undefined var void while yield";
define("js javascript jsx mjs ts typescript tsx", { ...C, quotes: "\"'`" }, JS_WORDS);
define("rust rs", { ...C, quotes: '"', charQuote: true, macros: true },
  "as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while");
define("c h cpp c++ cc hpp", C,
  "auto bool break case catch char class const continue default delete do double else enum extern false float for if include int long namespace new nullptr private public return sizeof static struct switch template this throw true try typedef union unsigned using virtual void while");
define("go golang", { ...C, quotes: "\"'`" },
  "break case chan const continue default defer else false for func go if import interface map nil package range return select struct switch true type var");
define("java kotlin kt swift csharp cs c# php", C,
  "abstract boolean break case catch class const continue default do else enum extends false final finally for foreach fun func function if implements import in int interface is let namespace new nil null override package private protected public return self static struct super switch this throw true try using val var void when while");
define("python py python3", { ...HASH, triple: true, types: true },
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return self try while with yield");
define("bash sh shell zsh", HASH, "case do done echo elif else esac exit export fi for function if in local return then until while");
define("ruby rb", HASH, "begin class def do else elsif end ensure false if module nil require rescue return self true unless while yield");
define("yaml yml", { ...HASH, keys: true }, "true false null yes no");
define("toml", { ...HASH, triple: true }, "true false");
define("r", HASH, "else FALSE for function if in NA next NULL repeat return TRUE while");
define("perl pl", HASH, "else elsif for foreach if last my next our package return sub unless use while");
define("sql", { line: ["--"], block: [["/*", "*/"]], caseless: true },
  "and as asc by create delete desc distinct drop from group having in inner insert into is join key left limit not null on or order primary select set table union update values where with");
define("lua", { line: ["--"], block: [["--[[", "]]"]] }, "and do else elseif end false for function if in local nil not or repeat return then true until while");
define("haskell hs", { line: ["--"], block: [["{-", "-}"]], quotes: '"', charQuote: true },
  "case class data deriving do else if import in instance let module newtype of then type where");
define("json jsonc", { ...C, types: false, quotes: '"', keys: true }, "true false null");

const NUMBER = /(?:0[xob][\da-f_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:e[+-]?\d+)?)\w*/iy;
const IDENT = /\$?[A-Za-z_][\w$]*/y;
const WORD_START = /[\w$]/;
// 'a' or '\n'; any other quote is a Rust lifetime or a Haskell prime.
const CHAR_LITERAL = /'(?:[^\\'\n]|\\[^'\n]*)'/y;

/** Source code to HTML with <span class="tok-..."> for highlighting; lang may be "" or unknown. */
export function highlight(code, lang) {
  const source = String(code ?? "");
  const spec = LANGS.get(String(lang ?? "").toLowerCase());
  if (!spec) return esc(source);
  const out = [];
  let plain = 0;
  for (let i = 0; i < source.length; ) {
    const [kind, end] = scan(source, i, spec);
    if (kind) {
      if (plain < i) out.push(esc(source.slice(plain, i)));
      out.push(`<span class="tok-${kind}">${esc(source.slice(i, end))}</span>`);
      plain = end;
    }
    i = end;
  }
  if (plain < source.length) out.push(esc(source.slice(plain)));
  return out.join("");
}

/** The token at i: its class (or null) and where it ends. */
function scan(code, i, spec) {
  const c = code[i];
  if (!WORD_START.test(c) && !spec.starts.includes(c)) return [null, i + 1];
  for (const [open, close] of spec.block) {
    if (code.startsWith(open, i)) return ["com", endOf(code, close, i + open.length)];
  }
  for (const marker of spec.line) {
    // "#" starts a comment only after a space: $# and url#anchor are not comments.
    if (code.startsWith(marker, i) && (marker !== "#" || i === 0 || SPACE.test(code[i - 1]))) {
      const newline = code.indexOf("\n", i);
      return ["com", newline < 0 ? code.length : newline];
    }
  }
  if (spec.triple && (c === '"' || c === "'") && code.startsWith(c.repeat(3), i)) {
    return ["str", endOf(code, c.repeat(3), i + 3)];
  }
  if (c === "'" && spec.charQuote) {
    const end = stickyEnd(CHAR_LITERAL, code, i);
    return end < 0 ? [null, i + 1] : ["str", end];
  }
  if (spec.quotes.includes(c)) {
    const end = stringEnd(code, i);
    return [spec.keys && /^[ \t]*:/.test(code.slice(end, end + 20)) ? "key" : "str", end];
  }
  if (c >= "0" && c <= "9") return ["num", stickyEnd(NUMBER, code, i)];
  const end = stickyEnd(IDENT, code, i);
  return end < 0 ? [null, i + 1] : [wordKind(code.slice(i, end), code[end], code[end + 1], spec), end];
}

function wordKind(word, next, afterNext, spec) {
  if (spec.words.has(spec.caseless ? word.toLowerCase() : word)) return "kw";
  if (spec.keys && next === ":" && (afterNext === undefined || SPACE.test(afterNext))) return "key";
  if (next === "(" || (spec.macros && next === "!")) return "fn";
  if (spec.types && /^[A-Z]/.test(word) && /[a-z]/.test(word)) return "type";
  return null;
}

function stickyEnd(re, code, i) {
  re.lastIndex = i;
  return re.test(code) ? re.lastIndex : -1;
}

// Unclosed comments and strings run to the end: the code may still be streaming in.
function endOf(code, close, from) {
  const at = code.indexOf(close, from);
  return at < 0 ? code.length : at + close.length;
}

// "…" and '…' stop at the line's end, so one stray quote can't colour the rest of the block.
function stringEnd(code, i) {
  for (let k = i + 1; k < code.length; k++) {
    if (code[k] === "\\") k++;
    else if (code[k] === code[i]) return k + 1;
    else if (code[k] === "\n" && code[i] !== "`") return k;
  }
  return code.length;
}
