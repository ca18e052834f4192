#!/usr/bin/env python3
"""An app's cold start against any OpenAI-compatible endpoint: N clients start at the same
moment, each with the same long system prompt (about 1,500 tokens) and a question of its own
(about 30 tokens), streaming 128-token answers; then each asks 3 more questions in the same
conversation, all clients at once again. Prints one JSON object: per wave, TTFT p50 and max,
aggregate generated tok/s, and every request's TTFT. Standard library only.

  bench/shared_prefix.py --url http://127.0.0.1:11434 --model smollm2:135m --clients 8
"""
import argparse, json, statistics

from load import stream_chat, together

TOPICS = ["returns", "shipping", "warranty", "repairs", "rentals", "payments", "accounts", "privacy",
          "opening hours", "gift cards", "loyalty points", "bulk orders"]
ACTIONS = ["explain the policy in one sentence", "ask for the order number first",
           "offer to open a ticket", "point to the help page", "say what it costs",
           "say how long it takes", "never promise a refund", "thank the customer"]


def system_prompt():
    """About 1,500 tokens of an app's instructions: numbered rules, each a little different."""
    rules = []
    for i in range(60):
        topic, action = TOPICS[i % len(TOPICS)], ACTIONS[(i * 5) % len(ACTIONS)]
        rules.append(f"Rule {i + 1}: when a customer writes about {topic}, {action}, "
                     f"and keep the answer under {40 + i} words.")
    return "You are the support assistant of Hearthware, a shop for home goods.\n" + "\n".join(rules)


QUESTIONS = [
    "I ordered a kettle last week and it still has not arrived. What can I do about it?",
    "My lamp stopped working after two months. Is that covered by your warranty or not?",
    "Can I return a rug that I already unpacked, if it does not match my living room?",
    "How long does a repair of a coffee grinder usually take at your workshop in town?",
    "Do you rent out carpet cleaners for the weekend, and how much would that cost me?",
    "I paid twice for the same order by mistake. How do I get one of the payments back?",
    "How can I change the email address on my account without losing my loyalty points?",
    "Are you open on public holidays, and until what time on a Saturday in December?",
]
FOLLOW_UPS = ["Thanks. Can you say that again more briefly?", "What should I do first?",
              "Is there anything else I should know?"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    system = system_prompt()
    conversations = [[{"role": "system", "content": system}, {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
                     for i in range(args.clients)]
    waves = []
    for wave in range(1 + len(FOLLOW_UPS)):
        ask = lambda i: stream_chat(args.url, args.model, conversations[i], args.tokens, seed=i + 1)
        results, wall = together(args.clients, ask)
        ttfts = [r["ttft"] * 1000 for r in results]
        waves.append({
            "ttft_p50_ms": statistics.median(ttfts),
            "ttft_max_ms": max(ttfts),
            "aggregate_tok_s": sum(r["tokens"] for r in results) / wall,
            "ttfts_ms": ttfts,
        })
        if wave < len(FOLLOW_UPS):
            for conversation, result in zip(conversations, results):
                conversation += [{"role": "assistant", "content": result["text"]},
                                 {"role": "user", "content": FOLLOW_UPS[wave]}]
    print(json.dumps({"clients": args.clients, "tokens": args.tokens, "waves": waves}))


if __name__ == "__main__":
    main()
