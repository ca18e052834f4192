#!/usr/bin/env bash
# Serving throughput and latency of `hearth serve` beside llama.cpp's llama-server, same
# model, threads and slots, in alternating rounds (this VM drifts; alternation spreads the
# drift over both). Each round runs bench/load.py against each server: N concurrent streaming
# chat clients asking for 128 tokens each, a two-turn chat for prefix reuse, and (hearth)
# the HTTP overhead per request. The table shows the median round.
#
# Usage: bench/serve.sh PATH/TO/llama-server
#   THREADS (default 2), SLOTS (8), ROUNDS (3), CLIENTS ("1 4 8"), TOKENS (128),
#   LLAMA_PRELOAD (an LD_PRELOAD for llama-server, e.g. a shim refusing AMX on this VM)
set -euo pipefail
cd "$(dirname "$0")/.."

llama_server=${1:?usage: bench/serve.sh PATH/TO/llama-server}
threads=${THREADS:-2}
slots=${SLOTS:-8}
rounds=${ROUNDS:-3}
clients=${CLIENTS:-1 4 8}
tokens=${TOKENS:-128}

. bench/servers.sh
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
bench_setup smollm2-bench "$gguf"

for round in $(seq "$rounds"); do
  HEARTH_NUM_PARALLEL=$slots target/release/hearth serve --host 127.0.0.1:11591 --threads "$threads" 2>"$work/hearth.log" &
  wait_for http://127.0.0.1:11591/
  python3 bench/load.py --url http://127.0.0.1:11591 --model smollm2-bench --clients $clients --tokens "$tokens" \
    --repeats 1 --overhead >"$work/hearth.$round.json"
  kill %1; wait %1 2>/dev/null || true

  LD_PRELOAD=${LLAMA_PRELOAD:-} "$llama_server" -m "$gguf" -t "$threads" -tb "$threads" -np "$slots" \
    -c $((4096 * slots)) --port 11592 >"$work/llama.log" 2>&1 &
  wait_for http://127.0.0.1:11592/health
  python3 bench/load.py --url http://127.0.0.1:11592 --model smollm2 --clients $clients --tokens "$tokens" \
    --repeats 1 >"$work/llama.$round.json"
  kill %1; wait %1 2>/dev/null || true
  echo "round $round done" >&2
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {name: [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)] for name in ("hearth", "llama")}
med = lambda xs: statistics.median(xs)
print("| clients | hearth tok/s | llama-server tok/s | ratio | hearth TTFT p50/p95 ms | llama-server TTFT p50/p95 ms | hearth ITL p50 ms | llama-server ITL p50 ms |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for i, level in enumerate(runs["hearth"][0]["levels"]):
    h = [r["levels"][i] for r in runs["hearth"]]
    l = [r["levels"][i] for r in runs["llama"]]
    ht, lt = med([x["aggregate_tok_s"] for x in h]), med([x["aggregate_tok_s"] for x in l])
    print(f"| {level['clients']} | {ht:.1f} | {lt:.1f} | {100 * ht / lt:.1f}% "
          f"| {med([x['ttft_p50_ms'] for x in h]):.0f} / {med([x['ttft_p95_ms'] for x in h]):.0f} "
          f"| {med([x['ttft_p50_ms'] for x in l]):.0f} / {med([x['ttft_p95_ms'] for x in l]):.0f} "
          f"| {med([x['itl_p50_ms'] for x in h]):.1f} | {med([x['itl_p50_ms'] for x in l]):.1f} |")
for name in ("hearth", "llama"):
    p = [r["prefix_reuse"] for r in runs[name]]
    print(f"{name}: 2nd-turn TTFT {med([x['turn2_ttft_ms'] for x in p]):.0f} ms vs 1st {med([x['turn1_ttft_ms'] for x in p]):.0f} ms "
          f"({med([x['ratio'] for x in p]):.1f}x lower)")
print(f"hearth HTTP overhead per request: {med([r['http_overhead_ms'] for r in runs['hearth']]):.2f} ms (median)")
PY
