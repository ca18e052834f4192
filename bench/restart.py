#!/usr/bin/env python3
"""One question about a long document (about 3,000 tokens of a ship's log) against any
OpenAI-compatible endpoint, streamed: prints one JSON object with its TTFT, the prompt's
tokens and those the server had cached. Run it before and after a server restart to see
what a saved prompt cache is worth. Standard library only.

  bench/restart.py --url http://127.0.0.1:11434 --model smollm2:135m --question 1
"""
import argparse, json

from load import stream_chat

PORTS = ["Lisbon", "Bergen", "Valletta", "Gdansk", "Cork", "Porto", "Tromso", "Naples", "Hull", "Split"]
CARGO = ["salt cod", "timber", "olive oil", "copper wire", "wool", "wine", "coal", "rope", "tea", "cork"]
WEATHER = ["a westerly gale", "fog until noon", "calm seas", "rain squalls", "a clear night", "heavy swell"]
QUESTIONS = [
    "Which port did the ship visit most often, and what did it load there?",
    "On which days was the weather worst, and what happened to the cargo?",
    "Summarise the voyage in three sentences.",
]


def document():
    """About 3,000 tokens: 90 log entries, each a little different."""
    entries = []
    for day in range(1, 91):
        port, cargo = PORTS[(day * 7) % len(PORTS)], CARGO[(day * 3) % len(CARGO)]
        weather = WEATHER[day % len(WEATHER)]
        entries.append(f"Day {day}: {weather}; made {40 + day % 17} miles toward {port}; "
                       f"{10 + day % 9} crates of {cargo} checked and dry.")
    return "The log of the schooner Hearthstone, kept by her first mate.\n" + "\n".join(entries)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--question", type=int, default=0, help="which of the questions to ask")
    args = parser.parse_args()
    messages = [{"role": "system", "content": document()},
                {"role": "user", "content": QUESTIONS[args.question % len(QUESTIONS)]}]
    result = stream_chat(args.url, args.model, messages, 16, seed=1)
    print(json.dumps({"ttft_ms": 1000 * result["ttft"], "prompt_tokens": result["prompt_tokens"],
                      "cached_tokens": result["cached_tokens"]}))


if __name__ == "__main__":
    main()
