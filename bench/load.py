#!/usr/bin/env python3
"""Serving load against any OpenAI-compatible endpoint (hearth, llama.cpp's llama-server, ...):
N concurrent streaming chat clients, each asking for exactly --tokens tokens (ignore_eos), and
a two-turn chat to see prefix reuse. Prints one JSON object. Standard library only.

  bench/load.py --url http://127.0.0.1:11434 --model smollm2:135m --clients 1 4 8
"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

QUESTIONS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle stays upright.",
    "Describe the water cycle to a child.",
    "What should I pack for a week of hiking?",
    "Tell me about the history of bread.",
    "How do bees make honey?",
    "Write a poem about autumn in a city.",
    "Explain what a compiler does.",
]


def stream_chat(url, model, messages, tokens, seed):
    """One streaming request: its TTFT, gaps between tokens, total seconds, completion tokens,
    text, and the prompt's tokens and those the server had cached (when it reports them)."""
    parts = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    body = json.dumps({
        "model": model, "messages": messages, "max_tokens": tokens, "stream": True,
        "ignore_eos": True, "seed": seed, "temperature": 0.8,
        "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    arrivals, completion, text, usage = [], None, [], {}
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            usage = chunk["usage"]
            completion = usage.get("completion_tokens")
        for choice in chunk.get("choices", []):
            content = choice.get("delta", {}).get("content")
            if content:
                arrivals.append(time.perf_counter())
                text.append(content)
    total = time.perf_counter() - start
    conn.close()
    return {
        "ttft": arrivals[0] - start if arrivals else total,
        "gaps": [b - a for a, b in zip(arrivals, arrivals[1:])],
        "total": total,
        "tokens": completion if completion is not None else tokens,
        "text": "".join(text),
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
    }


def together(clients, ask):
    """`ask(i)` for each of `clients` on threads started at the same moment: (their results, wall seconds)."""
    results = [None] * clients
    barrier = threading.Barrier(clients)
    def client(i):
        barrier.wait()
        results[i] = ask(i)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - start


def concurrent(url, model, clients, tokens):
    def ask(i):
        messages = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
        return stream_chat(url, model, messages, tokens, seed=i + 1)
    results, wall = together(clients, ask)
    ttfts = sorted(r["ttft"] for r in results)
    gaps = sorted(g for r in results for g in r["gaps"])
    tokens_total = sum(r["tokens"] for r in results)
    pct = lambda xs, p: xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None
    return {
        "clients": clients,
        "aggregate_tok_s": tokens_total / wall,
        "ttft_p50_ms": 1000 * pct(ttfts, 50),
        "ttft_p95_ms": 1000 * pct(ttfts, 95),
        "itl_p50_ms": 1000 * pct(gaps, 50) if gaps else None,
        "wall_s": wall,
        "tokens": tokens_total,
    }


def two_turns(url, model):
    """TTFT of a chat's first turn (cold) and its second (the first turn is a cached prefix)."""
    context = " ".join(QUESTIONS * 6)
    first = [{"role": "system", "content": "You are a helpful assistant. Background: " + context},
             {"role": "user", "content": "Summarise the background in one sentence."}]
    one = stream_chat(url, model, first, 32, seed=7)
    second = first + [{"role": "assistant", "content": one["text"]},
                      {"role": "user", "content": "Now say it in five words."}]
    two = stream_chat(url, model, second, 8, seed=7)
    return {"turn1_ttft_ms": 1000 * one["ttft"], "turn2_ttft_ms": 1000 * two["ttft"],
            "ratio": one["ttft"] / two["ttft"]}


def http_overhead(url, model, requests=20):
    """Client-seen latency minus the server's own total_duration (Ollama's /api/generate,
    one token, not streamed): what HTTP, JSON and queueing add to a request. Median, ms."""
    parts = urllib.parse.urlparse(url)
    overheads = []
    for i in range(requests):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        body = json.dumps({"model": model, "prompt": f"Count: {i}", "stream": False,
                           "options": {"num_predict": 1, "temperature": 0}})
        start = time.perf_counter()
        conn.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
        elapsed = time.perf_counter() - start
        conn.close()
        overheads.append(elapsed - reply["total_duration"] / 1e9)
    return 1000 * statistics.median(overheads)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead", action="store_true", help="also measure HTTP overhead (Ollama API)")
    args = parser.parse_args()
    stream_chat(args.url, args.model, [{"role": "user", "content": "Hi"}], 4, seed=1)  # warm-up
    levels = []
    for clients in args.clients:
        runs = [concurrent(args.url, args.model, clients, args.tokens) for _ in range(args.repeats)]
        runs.sort(key=lambda r: r["aggregate_tok_s"])
        levels.append(runs[len(runs) // 2])  # the median run
    report = {"levels": levels, "prefix_reuse": two_turns(args.url, args.model)}
    if args.overhead:
        report["http_overhead_ms"] = http_overhead(args.url, args.model)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
