#!/usr/bin/env python3
"""What each dialect's translation costs: the same prompt, greedy, asked of one running
`hearth serve` through OpenAI's chat completions, Anthropic's messages, OpenAI's responses
and Ollama's chat, in turn, round after round.

    python3 bench/dialects.py --url http://127.0.0.1:PORT --model NAME [--rounds 30]
        [--max-tokens 64]

Every request carries the same conversation, so each dialect's prompt renders to the same
tokens and, after the first round, is served from the same cached prefix; the answers are
the same greedy tokens. Per dialect it prints the median (and p90) time to first token and
decode tok/s of a streamed answer, and the median end-to-end time of a one-token answer,
in which the model's work is smallest and a dialect's own cost shows most. Standard library
only; every request has a timeout.
"""

import argparse
import http.client
import json
import statistics
import time
import urllib.parse

SYSTEM = "You are a concise assistant."
QUESTION = "Explain in a few sentences why the sky is blue."


def bodies(model, max_tokens, stream):
    """The same request in each dialect: (name, path, body, text of an SSE/NDJSON event)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    return [
        ("chat/completions", "/v1/chat/completions",
         {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": stream},
         lambda e: (e.get("choices") or [{}])[0].get("delta", {}).get("content")),
        ("messages", "/v1/messages",
         {"model": model, "system": SYSTEM, "messages": messages[1:], "max_tokens": max_tokens, "temperature": 0,
          "stream": stream},
         lambda e: e.get("delta", {}).get("text") if e.get("type") == "content_block_delta" else None),
        ("responses", "/v1/responses",
         {"model": model, "instructions": SYSTEM, "input": QUESTION, "max_output_tokens": max_tokens,
          "temperature": 0, "stream": stream, "store": False},
         lambda e: e.get("delta") if e.get("type") == "response.output_text.delta" else None),
        ("api/chat", "/api/chat",
         {"model": model, "messages": messages, "stream": stream,
          "options": {"num_predict": max_tokens, "temperature": 0}},
         lambda e: None if e.get("done") else e.get("message", {}).get("content")),
    ]


def timed(url, path, body, text_of, timeout=120):
    """POSTs `body`; returns (seconds to first text, seconds from first to last text, texts, total)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {response.read()[:300]!r}")
    first = last = None
    texts = 0
    if not body.get("stream"):
        response.read()
    else:
        for line in response:
            line = line.strip()
            if line.startswith(b"data: "):
                line = line[6:]
            if not line or line.startswith(b"event:") or line == b"[DONE]":
                continue
            text = text_of(json.loads(line))
            if text:
                now = time.perf_counter()
                first = first or now
                last = now
                texts += 1
    total = time.perf_counter() - started
    conn.close()
    if first is None:
        return None, None, 0, total
    return first - started, last - first, texts, total


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    streamed = bodies(args.model, args.max_tokens, True)
    single = bodies(args.model, 1, False)
    ttft, rate, e2e = ({name: [] for name, *_ in streamed} for _ in range(3))
    for round_ in range(args.rounds + 1):
        # Each round starts with another dialect, so none always runs first.
        order = list(range(len(streamed)))
        order = order[round_ % len(order):] + order[:round_ % len(order)]
        for i in order:
            name, path, body, text_of = streamed[i]
            first, span, texts, _ = timed(args.url, path, body, text_of)
            _, _, _, total = timed(args.url, single[i][1], single[i][2], single[i][3])
            if round_ == 0:
                continue  # warm-up: the prompt enters the cache
            ttft[name].append(first * 1000)
            if texts > 1 and span > 0:
                rate[name].append((texts - 1) / span)
            e2e[name].append(total * 1000)

    print(f"{'dialect':<18} {'TTFT p50 ms':>11} {'p90':>7} {'tok/s p50':>10} {'1-token e2e p50 ms':>19} {'p90':>7}")
    for name in ttft:
        print(f"{name:<18} {statistics.median(ttft[name]):>11.2f} {percentile(ttft[name], 90):>7.2f} "
              f"{statistics.median(rate[name]):>10.1f} {statistics.median(e2e[name]):>19.2f} "
              f"{percentile(e2e[name], 90):>7.2f}")


if __name__ == "__main__":
    main()
