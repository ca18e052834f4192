#!/usr/bin/env python3
"""Soak test of a running `hearth serve`: N concurrent clients for a fixed time, each picking
from a mix of well-formed and malformed requests in every dialect, while the server's memory
and requests in flight are sampled every second. Standard library only; traffic goes only to
the --url given (use 127.0.0.1).

  python3 bench/soak.py --url http://127.0.0.1:PORT --pid PID --duration 60 --clients 8 \\
      --model smollm2:135m [--rss-growth-mib 200]

The mix: Ollama chat and generate (streamed and not), OpenAI chat (SSE and not) and
completions, Anthropic messages and OpenAI responses (their named events and not), clients that disconnect mid-stream, embeddings (/api/embed, /api/embeddings,
/v1/embeddings), unknown models (404), malformed bodies (bad JSON, wrong types, out-of-range
values: 4xx with a JSON body in the dialect's shape), model churn (/api/copy to a temporary
name, chat with it, /api/delete it) and keep_alive: 0 unloads.

Exits 1 when: the server process dies; a well-formed request gets a 5xx, a connection failure
or a timeout (the server is expected to be configured with a queue large enough that it is
never "busy" with this many clients, so a 503 counts too); an answer is malformed; a malformed
request is not refused with a 4xx; an error body is not JSON in its dialect's shape; requests
in flight (/metrics) do not return to 0 once the clients stop; or the RSS at the end is more
than --rss-growth-mib above the RSS after warm-up.
"""
import argparse
import http.client
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "Say hi.",
    "What is the capital of France?",
    "Name a colour.",
    "Count to three.",
    "Write one word about the sea.",
    "What is 2 + 2?",
]

# Malformed bodies, per path: (path, raw body bytes). Each must get a 4xx with a JSON error
# body in the path's dialect.
BAD_JSON = [b"", b"{", b'{"model": ', b"[1, 2", b"not json", b"\xff\xfe\x00{", b'{"model": "x"}}', b"null"]


def malformed_cases(model):
    chat = [{"role": "user", "content": "hi"}]
    cases = []
    for path in ["/api/chat", "/api/generate", "/api/embed", "/v1/chat/completions", "/v1/completions",
                 "/v1/embeddings", "/v1/messages", "/v1/responses", "/api/show", "/api/copy", "/api/create"]:
        cases += [(path, raw) for raw in BAD_JSON]

    def add(path, body):
        cases.append((path, json.dumps(body).encode()))

    # Wrong types.
    add("/api/chat", {"model": model, "messages": "hi"})
    add("/api/chat", {"model": model, "messages": [{"role": "user", "content": 5}]})
    add("/api/chat", {"model": 12, "messages": chat})
    add("/api/chat", {"model": model, "messages": chat, "stream": "yes"})
    add("/api/chat", {"model": model, "messages": chat, "options": {"top_k": {"x": 1}}})
    add("/api/generate", {"model": model, "prompt": ["a", "b"]})
    add("/api/generate", {"model": model, "prompt": "hi", "options": "fast"})
    add("/api/generate", {"model": model, "prompt": "hi", "keep_alive": [1]})
    add("/api/embed", {"model": model, "input": 5})
    add("/api/embed", {"model": model, "input": [{"text": "a"}]})
    add("/v1/chat/completions", {"model": model, "messages": {"role": "user"}})
    add("/v1/chat/completions", {"model": model, "messages": chat, "max_tokens": "ten"})
    add("/v1/chat/completions", {"model": model, "messages": chat, "temperature": "warm"})
    add("/v1/completions", {"model": model, "prompt": {"text": "hi"}})
    add("/v1/embeddings", {"model": model, "input": None})
    add("/v1/embeddings", {"model": model, "input": True})
    add("/api/copy", {"source": model, "destination": 7})
    add("/api/show", {"model": ["x"]})
    # Out of range, or refused values.
    add("/api/chat", {"model": model, "messages": chat, "options": {"top_p": 3}})
    add("/api/chat", {"model": model, "messages": chat, "options": {"num_predict": 1e12}})
    add("/api/chat", {"model": model, "messages": chat, "top_logprobs": 1000})
    add("/api/generate", {"model": model, "prompt": "hi", "options": {"temperature": "hot"}})
    add("/api/generate", {"model": model, "prompt": "hi", "keep_alive": "forever"})
    add("/api/generate", {"model": model, "prompt": "hi", "images": ["aGk="]})
    add("/api/chat", {"model": "", "messages": chat})
    add("/api/chat", {"model": "bad name!", "messages": chat})
    add("/v1/chat/completions", {"model": model, "messages": chat, "max_tokens": 0})
    add("/v1/chat/completions", {"model": model, "messages": chat, "max_tokens": -5})
    add("/v1/chat/completions", {"model": model, "messages": chat, "max_tokens": 99999999999})
    add("/v1/chat/completions", {"model": model, "messages": chat, "n": 3})
    add("/v1/chat/completions", {"model": model, "messages": chat, "logprobs": True, "top_logprobs": 99})
    add("/v1/chat/completions", {"model": model, "messages": []})
    add("/v1/chat/completions", {"model": model, "messages": chat, "top_p": 7})
    add("/v1/completions", {"model": model, "prompt": ["a", "b"]})
    add("/v1/completions", {"model": model, "prompt": "hi", "logprobs": -1})
    add("/v1/embeddings", {"model": model, "input": "hi", "encoding_format": "hex"})
    add("/v1/embeddings", {"model": model, "input": []})
    add("/v1/embeddings", {"model": model, "input": "hi", "dimensions": 0})
    add("/v1/embeddings", {"model": model, "input": "hi", "dimensions": -1})
    add("/api/embed", {"model": model, "input": "hi", "dimensions": 100000})
    add("/v1/messages", {"model": model, "messages": chat})  # max_tokens is required
    add("/v1/messages", {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}]})
    add("/v1/messages", {"model": model, "max_tokens": 8, "messages": chat, "thinking": {"type": "enabled"}})
    add("/v1/responses", {"model": model, "input": [{"type": "item_reference", "id": "x"}]})
    add("/v1/responses", {"model": model, "input": "hi", "previous_response_id": "resp_none"})
    add("/v1/responses", {"model": model, "input": "hi", "tools": [{"type": "web_search"}]})
    add("/api/create", {"model": "soak-never"})
    add("/api/create", {"model": "soak-never", "files": {"m.gguf": "sha256:nothex"}})
    add("/api/create", {"model": "soak-never", "from": model, "quantize": "q4_0"})
    add("/api/copy", {"source": model, "destination": "bad name!"})
    return cases


def dialect_of(path):
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    return "openai" if path.startswith("/v1/") else "ollama"


def error_shape_ok(dialect, body):
    """Whether `body` (bytes) is an error in the dialect's shape."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(value, dict):
        return False
    error = value.get("error")
    if dialect == "ollama":
        return isinstance(error, str) and error != ""
    if dialect == "anthropic":
        return value.get("type") == "error" and isinstance(error, dict) and isinstance(error.get("message"), str)
    return isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)


class Failure(Exception):
    """A request whose outcome breaks the server's contract; `fatal` ones fail the soak."""


class Client:
    def __init__(self, url, timeout, key=None):
        parts = urllib.parse.urlparse(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.key = key

    def auth_headers(self, key=None):
        key = key or self.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method, path, body=None, stream_reader=None, key=None):
        """Returns (status, body bytes). `stream_reader(response, deadline)` reads a 200 body;
        `key` replaces the client's own."""
        deadline = time.monotonic() + self.timeout
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"Content-Type": "application/json", "Connection": "close", **self.auth_headers(key)}
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            if response.status == 200 and stream_reader is not None:
                return response.status, stream_reader(response, deadline)
            return response.status, response.read()
        finally:
            conn.close()

    def disconnect_mid_stream(self, path, body, keep_bytes):
        """Sends a streamed request, reads `keep_bytes` of the answer, then closes the socket."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            auth = "".join(f"{name}: {value}\r\n" for name, value in self.auth_headers().items())
            # Connection: close, so an answer shorter than `keep_bytes` ends in EOF rather than
            # a kept-alive connection the read waits on past its timeout.
            head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                    f"{auth}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            sock.sendall(head + body)
            got = b""
            deadline = time.monotonic() + self.timeout
            while len(got) < keep_bytes and time.monotonic() < deadline:
                chunk = sock.recv(keep_bytes - len(got))
                if not chunk:
                    break
                got += chunk
            return got


def read_lines(response, deadline, limit=10_000):
    """Reads a streamed body line by line, within the deadline and a line count."""
    lines = []
    for _ in range(limit):
        if time.monotonic() > deadline:
            raise Failure("the stream outlived the request timeout")
        line = response.readline()
        if not line:
            return lines
        lines.append(line)
    raise Failure(f"more than {limit} lines")


class Soak:
    def __init__(self, args):
        self.args = args
        self.client = Client(args.url, args.timeout, args.key)
        self.lock = threading.Lock()
        self.counts = {}      # kind -> requests
        self.errors = {}      # kind -> {outcome: count}
        self.latency = {}     # kind -> [seconds]
        self.failures = []    # (kind, description)
        self.fatal = 0
        self.churn_lock = threading.Lock()  # one model copy at a time: loaded models stay few
        self.malformed = malformed_cases(args.model)
        self.stop = threading.Event()
        self.samples = []     # (t, rss_kib, in_flight)

    # --- bookkeeping -------------------------------------------------------------------
    def record(self, kind, seconds, outcome=None, detail=None, fatal=True):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.latency.setdefault(kind, []).append(seconds)
            if outcome is not None:
                per_kind = self.errors.setdefault(kind, {})
                per_kind[outcome] = per_kind.get(outcome, 0) + 1
                if fatal:
                    self.fatal += 1
                    if len(self.failures) < 200:
                        self.failures.append((kind, detail or outcome))

    def run_one(self, kind, action):
        started = time.monotonic()
        try:
            action()
        except Failure as e:
            self.record(kind, time.monotonic() - started, "bad answer", f"{e}")
        except (OSError, http.client.HTTPException) as e:
            outcome = "timeout" if isinstance(e, (socket.timeout, TimeoutError)) else "connection"
            self.record(kind, time.monotonic() - started, outcome, f"{type(e).__name__}: {e}")
        else:
            self.record(kind, time.monotonic() - started)

    # --- checks ------------------------------------------------------------------------
    @staticmethod
    def expect_ok(what, status, body):
        if status != 200:
            raise Failure(f"{what}: HTTP {status}: {body[:300]!r}")

    @staticmethod
    def json_of(what, body):
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Failure(f"{what}: not JSON: {body[:300]!r}")

    def check_ndjson(self, what, lines, field):
        if not lines:
            raise Failure(f"{what}: an empty stream")
        values = [self.json_of(what, line) for line in lines if line.strip()]
        for value in values:
            if "error" in value:
                raise Failure(f"{what}: an error mid-stream: {value}")
        if values[-1].get("done") is not True:
            raise Failure(f"{what}: the last line is not done: {values[-1]}")
        for value in values:
            piece = value.get("message", {}).get("content") if field == "message" else value.get(field)
            if not isinstance(piece, str):
                raise Failure(f"{what}: no {field} in {value}")

    def check_sse(self, what, lines):
        events = [line.decode("utf-8", "replace").strip() for line in lines]
        data = [e[len("data: "):] for e in events if e.startswith("data: ")]
        if not data or data[-1] != "[DONE]":
            raise Failure(f"{what}: does not end with data: [DONE]: {events[-3:]}")
        chunks = [self.json_of(what, d) for d in data[:-1]]
        if not chunks or any("error" in c for c in chunks):
            raise Failure(f"{what}: no chunks, or an error: {chunks[-1:] or events}")
        finished = [c for c in chunks for choice in c.get("choices", []) if choice.get("finish_reason")]
        if not finished:
            raise Failure(f"{what}: no chunk has a finish_reason")

    def check_named_events(self, what, lines, ends):
        """Named SSE events (Anthropic's, the Responses API's): each `data` of its event's
        type, no error, and the last one of `ends`."""
        events = [line.decode("utf-8", "replace").strip() for line in lines]
        names = [e[len("event: "):] for e in events if e.startswith("event: ")]
        data = [self.json_of(what, e[len("data: "):]) for e in events if e.startswith("data: ")]
        if not names or len(names) != len(data) or any(d.get("type") != n for n, d in zip(names, data)):
            raise Failure(f"{what}: events and their data do not match: {events[-4:]}")
        if "error" in names or names[-1] not in ends:
            raise Failure(f"{what}: an error, or no end: {events[-4:]}")

    # --- the kinds ---------------------------------------------------------------------
    def body(self, rng, **extra):
        return dict({"model": self.args.model}, **extra)

    def messages(self, rng):
        return [{"role": "user", "content": rng.choice(PROMPTS)}]

    def predict(self, rng):
        return rng.randint(8, 16)

    def ollama_chat(self, rng, model=None, stream=False, extra=None):
        body = {"model": model or self.args.model, "messages": self.messages(rng), "stream": stream,
                "options": {"num_predict": self.predict(rng), "seed": rng.randint(0, 1000)}}
        body.update(extra or {})
        self.ollama_answer("/api/chat", body, stream, "message")

    def ollama_generate(self, rng, stream):
        body = self.body(rng, prompt=rng.choice(PROMPTS), stream=stream, options={"num_predict": self.predict(rng)})
        self.ollama_answer("/api/generate", body, stream, "response")

    def ollama_answer(self, path, body, stream, field):
        """Sends an Ollama generation request and checks its answer: NDJSON lines carrying
        `field` when streamed, else one object that is done and holds the text."""
        raw = json.dumps(body).encode()
        if stream:
            status, lines = self.client.request("POST", path, raw, read_lines)
            self.expect_ok(f"{path} stream", status, lines if status != 200 else b"")
            self.check_ndjson(f"{path} stream", lines, field)
            return
        status, reply = self.client.request("POST", path, raw)
        self.expect_ok(path, status, reply)
        value = self.json_of(path, reply)
        text = value.get(field)
        if field == "message":
            text = (text or {}).get("content")
        if value.get("done") is not True or not isinstance(text, str):
            raise Failure(f"{path}: not an answer: {value}")

    def openai_chat(self, rng, stream):
        body = self.body(rng, messages=self.messages(rng), max_tokens=self.predict(rng), stream=stream)
        if stream and rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        self.openai_answer("/v1/chat/completions", body, stream,
                           lambda value, choice: "usage" in value and choice.get("message", {}).get("content"))

    def openai_completion(self, rng, stream):
        body = self.body(rng, prompt=rng.choice(PROMPTS), max_tokens=self.predict(rng), stream=stream)
        self.openai_answer("/v1/completions", body, stream, lambda value, choice: choice.get("text"))

    def openai_answer(self, path, body, stream, text_of):
        """Sends an OpenAI generation request and checks its answer: SSE events ending in
        [DONE] when streamed, else one object whose first choice `text_of` finds text in."""
        raw = json.dumps(body).encode()
        if stream:
            status, lines = self.client.request("POST", path, raw, read_lines)
            self.expect_ok(f"{path} stream", status, lines if status != 200 else b"")
            self.check_sse(f"{path} stream", lines)
            return
        status, reply = self.client.request("POST", path, raw)
        self.expect_ok(path, status, reply)
        value = self.json_of(path, reply)
        choice = (value.get("choices") or [{}])[0]
        if not isinstance(text_of(value, choice), str):
            raise Failure(f"{path}: not an answer: {value}")

    def anthropic_messages(self, rng, stream):
        body = self.body(rng, messages=self.messages(rng), max_tokens=self.predict(rng), stream=stream)
        raw = json.dumps(body).encode()
        if stream:
            status, lines = self.client.request("POST", "/v1/messages", raw, read_lines)
            self.expect_ok("/v1/messages stream", status, lines if status != 200 else b"")
            self.check_named_events("/v1/messages stream", lines, ["message_stop"])
            return
        status, reply = self.client.request("POST", "/v1/messages", raw)
        self.expect_ok("/v1/messages", status, reply)
        value = self.json_of("/v1/messages", reply)
        if value.get("type") != "message" or not value.get("stop_reason"):
            raise Failure(f"/v1/messages: not an answer: {value}")

    def responses(self, rng, stream):
        body = self.body(rng, input=rng.choice(PROMPTS), max_output_tokens=self.predict(rng), stream=stream,
                         store=rng.random() < 0.5)
        raw = json.dumps(body).encode()
        if stream:
            status, lines = self.client.request("POST", "/v1/responses", raw, read_lines)
            self.expect_ok("/v1/responses stream", status, lines if status != 200 else b"")
            self.check_named_events("/v1/responses stream", lines, ["response.completed", "response.incomplete"])
            return
        status, reply = self.client.request("POST", "/v1/responses", raw)
        self.expect_ok("/v1/responses", status, reply)
        value = self.json_of("/v1/responses", reply)
        if value.get("object") != "response" or value.get("status") not in ("completed", "incomplete"):
            raise Failure(f"/v1/responses: not an answer: {value}")

    def disconnect(self, rng):
        path, body = rng.choice([
            ("/api/chat", {"messages": self.messages(rng), "stream": True, "options": {"num_predict": 64}}),
            ("/api/generate", {"prompt": rng.choice(PROMPTS), "stream": True, "options": {"num_predict": 64}}),
            ("/v1/chat/completions", {"messages": self.messages(rng), "stream": True, "max_tokens": 64}),
            ("/v1/completions", {"prompt": rng.choice(PROMPTS), "stream": True, "max_tokens": 64}),
            ("/v1/messages", {"messages": self.messages(rng), "stream": True, "max_tokens": 64}),
            ("/v1/responses", {"input": rng.choice(PROMPTS), "stream": True, "max_output_tokens": 64}),
        ])
        body["model"] = self.args.model
        # Past the headers into the body (a few hundred bytes), or just the status line.
        got = self.client.disconnect_mid_stream(path, json.dumps(body).encode(), rng.choice([12, 200, 400]))
        if not got.startswith(b"HTTP/1.1 "):
            raise Failure(f"{path} (disconnecting): no HTTP status: {got[:100]!r}")
        status = got[9:12]
        if status != b"200":
            raise Failure(f"{path} (disconnecting): HTTP {status.decode('latin-1')}: {got[:300]!r}")

    def embed(self, rng):
        which = rng.choice(["/api/embed", "/api/embeddings", "/v1/embeddings"])
        text = rng.choice(PROMPTS)
        if which == "/api/embed":
            body = self.body(rng, input=rng.choice([text, [text, "and another"]]))
            key = "embeddings"
        elif which == "/api/embeddings":
            body = self.body(rng, prompt=text)
            key = "embedding"
        else:
            body = self.body(rng, input=rng.choice([text, [text, "two"]]),
                             encoding_format=rng.choice(["float", "base64"]))
            key = "data"
        status, reply = self.client.request("POST", which, json.dumps(body).encode())
        self.expect_ok(which, status, reply)
        value = self.json_of(which, reply)
        if not isinstance(value.get(key), list) or not value[key]:
            raise Failure(f"{which}: no {key}: {str(value)[:300]}")

    def unknown_model(self, rng):
        name = f"soak-missing-{rng.randint(0, 10**6)}:latest"
        path, body = rng.choice([
            ("/api/chat", {"messages": self.messages(rng), "stream": False}),
            ("/api/generate", {"prompt": "hi", "stream": False}),
            ("/api/embed", {"input": "hi"}),
            ("/api/show", {}),
            ("/v1/chat/completions", {"messages": self.messages(rng)}),
            ("/v1/completions", {"prompt": "hi"}),
            ("/v1/embeddings", {"input": "hi"}),
        ])
        body["model"] = name
        status, reply = self.client.request("POST", path, json.dumps(body).encode())
        if status != 404:
            raise Failure(f"{path} with unknown model {name}: HTTP {status}, expected 404: {reply[:300]!r}")
        if not error_shape_ok(dialect_of(path), reply):
            raise Failure(f"{path} 404: not a {dialect_of(path)} error body: {reply[:300]!r}")

    def wrong_key(self, rng):
        """A server with keys: a wrong key is a 401 in the path's dialect, however busy it is."""
        path, body = rng.choice([
            ("/api/chat", {"model": self.args.model, "messages": self.messages(rng), "stream": False}),
            ("/v1/chat/completions", {"model": self.args.model, "messages": self.messages(rng)}),
            ("/v1/messages", {"model": self.args.model, "max_tokens": 8, "messages": self.messages(rng)}),
        ])
        status, reply = self.client.request("POST", path, json.dumps(body).encode(), key="hearth-wrong")
        if status != 401 or not error_shape_ok(dialect_of(path), reply):
            raise Failure(f"{path} with a wrong key: HTTP {status}, expected a 401 error body: {reply[:300]!r}")

    def malformed_request(self, rng):
        path, raw = rng.choice(self.malformed)
        status, reply = self.client.request("POST", path, raw)
        what = f"{path} {raw[:120]!r}"
        if not 400 <= status < 500:
            raise Failure(f"{what}: HTTP {status}, expected 4xx: {reply[:300]!r}")
        if not error_shape_ok(dialect_of(path), reply):
            raise Failure(f"{what}: HTTP {status} body is not a {dialect_of(path)} error: {reply[:300]!r}")

    def churn(self, rng, index):
        # One copy at a time (a copy loads as a model of its own), so loaded models stay few.
        with self.churn_lock:
            name = f"soak-copy-{index}-{rng.randint(0, 10**9)}:latest"
            raw = json.dumps({"source": self.args.model, "destination": name}).encode()
            status, reply = self.client.request("POST", "/api/copy", raw)
            self.expect_ok(f"/api/copy to {name}", status, reply)
            try:
                self.ollama_chat(rng, model=name, stream=rng.random() < 0.5)
            finally:
                status, reply = self.client.request("DELETE", "/api/delete", json.dumps({"model": name}).encode())
                self.expect_ok(f"/api/delete {name}", status, reply)
            status, reply = self.client.request("POST", "/api/show", json.dumps({"model": name}).encode())
            if status != 404:
                raise Failure(f"/api/show {name} after delete: HTTP {status}, expected 404: {reply[:200]!r}")

    def unload(self, rng):
        if rng.random() < 0.5:
            # keep_alive 0 and nothing to answer: unload now.
            raw = json.dumps({"model": self.args.model, "keep_alive": 0}).encode()
            status, reply = self.client.request("POST", "/api/generate", raw)
            self.expect_ok("/api/generate keep_alive 0", status, reply)
            value = self.json_of("/api/generate keep_alive 0", reply)
            if value.get("done_reason") != "unload":
                raise Failure(f"/api/generate keep_alive 0: {value}")
        else:
            # Answer, then unload once idle.
            self.ollama_chat(rng, extra={"keep_alive": 0})

    KINDS = [
        # (kind, weight)
        ("ollama_chat", 10), ("ollama_chat_stream", 10), ("ollama_generate", 5), ("ollama_generate_stream", 5),
        ("openai_chat", 10), ("openai_chat_stream", 10), ("openai_completion", 5), ("openai_completion_stream", 5),
        ("anthropic_messages", 5), ("anthropic_messages_stream", 5), ("responses", 5), ("responses_stream", 5),
        ("disconnect", 8), ("embed", 8), ("unknown_model", 6), ("malformed", 14), ("churn", 2), ("unload", 2),
        ("wrong_key", 6),
    ]

    def action(self, kind, rng, index):
        return {
            "ollama_chat": lambda: self.ollama_chat(rng),
            "ollama_chat_stream": lambda: self.ollama_chat(rng, stream=True),
            "ollama_generate": lambda: self.ollama_generate(rng, False),
            "ollama_generate_stream": lambda: self.ollama_generate(rng, True),
            "openai_chat": lambda: self.openai_chat(rng, False),
            "openai_chat_stream": lambda: self.openai_chat(rng, True),
            "openai_completion": lambda: self.openai_completion(rng, False),
            "openai_completion_stream": lambda: self.openai_completion(rng, True),
            "anthropic_messages": lambda: self.anthropic_messages(rng, False),
            "anthropic_messages_stream": lambda: self.anthropic_messages(rng, True),
            "responses": lambda: self.responses(rng, False),
            "responses_stream": lambda: self.responses(rng, True),
            "disconnect": lambda: self.disconnect(rng),
            "embed": lambda: self.embed(rng),
            "unknown_model": lambda: self.unknown_model(rng),
            "malformed": lambda: self.malformed_request(rng),
            "churn": lambda: self.churn(rng, index),
            "unload": lambda: self.unload(rng),
            "wrong_key": lambda: self.wrong_key(rng),
        }[kind]

    def client_loop(self, index, deadline):
        rng = random.Random(self.args.seed * 1000 + index)
        # A server without keys takes any key: wrong ones are tried only where keys are needed.
        mix = [(k, w) for k, w in self.KINDS if k != "wrong_key" or self.args.key]
        kinds = [k for k, _ in mix]
        weights = [w for _, w in mix]
        for _ in range(self.args.max_requests_per_client):
            if time.monotonic() >= deadline or self.stop.is_set():
                return
            kind = rng.choices(kinds, weights)[0]
            self.run_one(kind, self.action(kind, rng, index))

    # --- the server ----------------------------------------------------------------------
    def rss_kib(self):
        try:
            with open(f"/proc/{self.args.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def alive(self):
        try:
            with open(f"/proc/{self.args.pid}/stat") as stat:
                # A zombie (state Z) has died but not been reaped.
                return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    def in_flight(self):
        try:
            status, text = Client(self.args.url, 10, self.args.key).request("GET", "/metrics")
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        for line in text.decode("utf-8", "replace").splitlines():
            if line.startswith("hearth_requests_in_flight "):
                return int(float(line.split()[1]))
        return None

    def sampler(self, started):
        while not self.stop.wait(1.0):
            rss = self.rss_kib()
            self.samples.append((time.monotonic() - started, rss, self.in_flight()))
            if rss is None or not self.alive():
                return

    def warm_up(self):
        """One request of each well-formed kind, one at a time: loads the model and its
        embedding context, so the RSS after it is the baseline."""
        rng = random.Random(self.args.seed)
        for kind in ["ollama_chat", "ollama_chat_stream", "openai_chat_stream", "openai_completion", "embed",
                     "embed", "embed", "churn", "disconnect"]:
            self.run_one("warmup:" + kind, self.action(kind, rng, 0))
        time.sleep(1.0)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def slope(points):
    """Least-squares slope of (x, y) points, or 0 with fewer than two."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:11434")
    parser.add_argument("--pid", type=int, required=True, help="the server's process id (for its RSS)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--rss-growth-mib", type=float, default=200,
                        help="fail when the RSS at the end is this much above the RSS after warm-up")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    parser.add_argument("--settle", type=float, default=15, help="seconds for in-flight requests to reach 0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--key", help="an admin API key, for a server that needs one (wrong keys are then tried too)")
    parser.add_argument("--max-requests-per-client", type=int, default=100_000)
    args = parser.parse_args()
    host = urllib.parse.urlparse(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"soak: {args.url} is not on this machine; the soak only sends traffic to 127.0.0.1")

    soak = Soak(args)
    if not soak.alive():
        sys.exit(f"soak: no process {args.pid}")
    started = time.monotonic()
    soak.warm_up()
    baseline = soak.rss_kib()
    sampler = threading.Thread(target=soak.sampler, args=(started,), daemon=True)
    sampler.start()
    load_started = time.monotonic()
    deadline = load_started + args.duration
    clients = [threading.Thread(target=soak.client_loop, args=(i, deadline), daemon=True) for i in range(args.clients)]
    for client in clients:
        client.start()
    while any(c.is_alive() for c in clients):
        if not soak.alive():
            soak.stop.set()
            break
        time.sleep(0.2)
    # Clients finish their request in hand: bounded by the request timeout.
    for client in clients:
        client.join(args.timeout + 5)
    load_seconds = time.monotonic() - load_started

    # Settle: requests in flight must drop to 0.
    in_flight = None
    settle_deadline = time.monotonic() + args.settle
    while time.monotonic() < settle_deadline and soak.alive():
        in_flight = soak.in_flight()
        if in_flight == 0:
            break
        time.sleep(0.5)
    time.sleep(1.0)
    end_samples = []
    for _ in range(3):
        time.sleep(0.3)
        end_samples.append(soak.rss_kib())
    soak.stop.set()
    sampler.join(5)
    alive = soak.alive()

    # --- report ----------------------------------------------------------------------------
    mib = lambda kib: kib / 1024
    problems = []
    print(f"soak: {args.clients} clients for {load_seconds:.1f} s against {args.url} (pid {args.pid})")
    print(f"{'kind':<34}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  outcomes")
    total = 0
    for kind in sorted(soak.counts):
        lat = soak.latency[kind]
        errs = soak.errors.get(kind, {})
        total += soak.counts[kind]
        print(f"{kind:<34}{soak.counts[kind]:>9}{sum(errs.values()):>8}{percentile(lat, 50) * 1000:>9.0f}"
              f"{percentile(lat, 95) * 1000:>9.0f}{max(lat) * 1000:>9.0f}  "
              + ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())))
    print(f"total requests: {total} ({total / max(load_seconds, 1e-9):.1f}/s)")
    rss = [(t, kib) for t, kib, _ in soak.samples if kib is not None]
    end = [kib for kib in end_samples if kib is not None]
    if baseline is not None and rss:
        second_half = [(t, mib(kib)) for t, kib in rss if t >= rss[0][0] + (rss[-1][0] - rss[0][0]) / 2]
        trend = slope(second_half) * 60
        end_rss = statistics.median(end) if end else rss[-1][1]
        print(f"RSS MiB: after warm-up {mib(baseline):.1f}, end {mib(end_rss):.1f}, "
              f"max {mib(max(k for _, k in rss)):.1f}, trend over the second half {trend:+.1f} MiB/min")
        growth = mib(end_rss - baseline)
        if growth > args.rss_growth_mib:
            problems.append(f"RSS grew {growth:.1f} MiB over the soak (limit {args.rss_growth_mib:g})")
    flights = [f for _, _, f in soak.samples if f is not None]
    print(f"requests in flight: max {max(flights, default=0)}, at the end {in_flight}")
    if not alive:
        problems.append(f"the server (pid {args.pid}) died")
    elif in_flight != 0:
        problems.append(f"requests in flight did not return to 0 within {args.settle:g} s: {in_flight}")
    if soak.fatal:
        problems.append(f"{soak.fatal} requests broke the contract")
        print("failures (first of each):")
        seen = set()
        for kind, detail in soak.failures:
            key = (kind, detail[:80])
            if key not in seen:
                seen.add(key)
                print(f"  [{kind}] {detail}")
            if len(seen) >= 30:
                break
    if problems:
        for problem in problems:
            print(f"SOAK FAILED: {problem}")
        return 1
    print("soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
