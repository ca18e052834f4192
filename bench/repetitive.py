#!/usr/bin/env python3
"""One client asks for a code file back with one change, through OpenAI's /v1/completions
(any server that has it: hearth, llama.cpp's llama-server), greedy, streaming. Prints one JSON
object: time to first token, generation tok/s (tokens after the first over the time from the
first to the last), the tokens generated and the text, so answers can be compared across
servers. Standard library only.

  bench/repetitive.py --url http://127.0.0.1:11434 --model gemma3 --tokens 600
"""
import argparse, http.client, json, pathlib, time, urllib.parse

FILE = (pathlib.Path(__file__).parent / "data" / "inventory.py").read_text()
EXAMPLE = """def area(radius):
    return 3.14159 * radius * radius


def describe(radius):
    print("radius", radius, "area", area(radius))
"""
# One worked example of the task (a file given back with a name changed), then the task:
# what an editor integration sends, and what makes a small model copy rather than wander.
PROMPT = (
    "Each file is given back unchanged except for the rename asked.\n\n"
    f"### Rename `area` to `surface`.\n```python\n{EXAMPLE}```\n### Result\n"
    f"```python\n{EXAMPLE.replace('area(', 'surface(')}```\n\n"
    f"### Rename `cheapest` to `least_expensive`.\n```python\n{FILE}```\n### Result\n```python\n"
)


def ask(url, model, tokens):
    parts = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    body = json.dumps({
        "model": model, "prompt": PROMPT, "max_tokens": tokens, "stream": True, "temperature": 0,
        "repeat_penalty": 1.0, "ignore_eos": True, "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    arrivals, text, usage = [], [], {}
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        usage = event.get("usage") or usage
        for choice in event.get("choices", []):
            if choice.get("text"):
                arrivals.append(time.perf_counter())
                text.append(choice["text"])
    generated = usage.get("completion_tokens", len(arrivals))
    decode = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0
    return {
        "ttft_ms": (arrivals[0] - start) * 1000 if arrivals else None,
        "tokens": generated,
        "generation_tok_s": (generated - 1) / decode if decode > 0 else None,
        "drafts": usage.get("completion_tokens_details"),
        "text": "".join(text),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=600)
    args = parser.parse_args()
    print(json.dumps(ask(args.url, args.model, args.tokens)))


if __name__ == "__main__":
    main()
