#!/usr/bin/env python3
"""What admitting one long request costs the streams already running: the inter-token
latency of N streaming answers while a request with a long prompt and a JSON schema is
admitted and prefilled beside them.

    python3 bench/admission.py --url http://127.0.0.1:PORT --model NAME [--streams 4]
        [--prompt-chars 12000] [--rounds 3]

The server needs slots for streams + 1 and a context that holds the long prompt (about
3,000 tokens at the default 12,000 characters). Each round starts the streams (OpenAI
completions, greedy, ignore_eos), waits until each has sent 16 tokens, then sends the long
request (chat, `response_format` with a JSON schema, streamed) and records when its first
token came. Gaps between the streams' tokens are split into those before the long request
was sent and those that ended while it was being admitted (sent to first token). Prints the
p50/p95/p99/max of each, per round and over all rounds. Standard library only; every
request has a timeout.
"""

import argparse
import http.client
import json
import pathlib
import statistics
import threading
import time
import urllib.parse

TEXT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "around-the-world-in-80-days.txt"
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "characters": {"type": "array", "items": {"type": "string"}},
        "places": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
    "required": ["title", "characters", "summary"],
}


def stream(url, path, body, on_event, timeout=300):
    """POSTs `body` and calls `on_event(time)` for every SSE data line that is not [DONE]."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {response.read()[:200]!r}")
    for line in response:
        if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
            on_event(time.monotonic())
    conn.close()


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(gaps):
    ms = [g * 1000 for g in gaps]
    return (len(ms), statistics.median(ms) if ms else float("nan"), percentile(ms, 95), percentile(ms, 99),
            max(ms) if ms else float("nan"))


def one_round(args, prompt):
    arrivals = [[] for _ in range(args.streams)]
    threads = []
    for i in range(args.streams):
        body = {"model": args.model, "prompt": f"Story {i}: once upon a time", "max_tokens": args.stream_tokens,
                "temperature": 0, "ignore_eos": True, "stream": True}
        worker = threading.Thread(target=stream, args=(args.url, "/v1/completions", body, arrivals[i].append))
        worker.start()
        threads.append(worker)
    deadline = time.monotonic() + 120
    while any(len(a) < 16 for a in arrivals):
        if time.monotonic() > deadline:
            raise RuntimeError("the streams did not start")
        time.sleep(0.01)
    first = []
    sent = time.monotonic()
    long_body = {"model": args.model, "max_tokens": 8, "temperature": 0, "stream": True,
                 "messages": [{"role": "user", "content": "Summarise this as JSON:\n\n" + prompt}],
                 "response_format": {"type": "json_schema", "json_schema": {"name": "book", "schema": SCHEMA}}}
    stream(args.url, "/v1/chat/completions", long_body, lambda t: first.append(t))
    # The role chunk goes out with the first token: the reply starts once there is one.
    admitted = first[0]
    for worker in threads:
        worker.join()
    before, during = [], []
    for times in arrivals:
        for a, b in zip(times, times[1:]):
            if b <= sent:
                before.append(b - a)
            elif b <= admitted:
                during.append(b - a)
    return before, during, admitted - sent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--stream-tokens", type=int, default=400)
    parser.add_argument("--prompt-chars", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    text = TEXT.read_text(encoding="utf-8-sig")
    prompt = text[20000:20000 + args.prompt_chars]
    all_before, all_during = [], []
    print(f"{'round':>5} {'phase':>8} {'gaps':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}  admit s")
    for r in range(1, args.rounds + 1):
        before, during, admit = one_round(args, prompt)
        all_before += before
        all_during += during
        for phase, gaps in (("before", before), ("admit", during)):
            n, p50, p95, p99, top = summary(gaps)
            print(f"{r:>5} {phase:>8} {n:>5} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {top:>8.1f}  {admit:.2f}")
    for phase, gaps in (("before", all_before), ("admit", all_during)):
        n, p50, p95, p99, top = summary(gaps)
        print(f"{'all':>5} {phase:>8} {n:>5} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {top:>8.1f}")


if __name__ == "__main__":
    main()
