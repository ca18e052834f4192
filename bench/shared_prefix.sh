#!/usr/bin/env bash
# An app's cold start (bench/shared_prefix.py: 8 clients at once with one ~1,500-token system
# prompt and a question each, 128-token answers, then 3 more questions each) against
# `hearth serve` and llama.cpp's llama-server with the options a careful user would set
# (-np 8, --cache-reuse 256, its default 8 GiB --cache-ram), same model and threads, in
# alternating rounds. Prints per wave TTFT p50 and max and aggregate tok/s (median round),
# and hearth's ratios to llama-server.
#
# Usage: bench/shared_prefix.sh PATH/TO/llama-server
#   THREADS (default 2), CLIENTS (8), ROUNDS (2), TOKENS (128), LLAMA_PRELOAD
set -euo pipefail
cd "$(dirname "$0")/.."

llama_server=${1:?usage: bench/shared_prefix.sh PATH/TO/llama-server}
threads=${THREADS:-2}
clients=${CLIENTS:-8}
rounds=${ROUNDS:-2}
tokens=${TOKENS:-128}

. bench/servers.sh
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
bench_setup smollm2-bench "$gguf"
ask() { python3 bench/shared_prefix.py --url "$1" --model smollm2-bench --clients "$clients" --tokens "$tokens" >"$2"; }

for round in $(seq "$rounds"); do
  HEARTH_NUM_PARALLEL=$clients target/release/hearth serve --host 127.0.0.1:11595 --threads "$threads" 2>"$work/hearth.log" &
  wait_for http://127.0.0.1:11595/
  ask http://127.0.0.1:11595 "$work/hearth.$round.json"
  kill %1; wait %1 2>/dev/null || true

  LD_PRELOAD=${LLAMA_PRELOAD:-} "$llama_server" -m "$gguf" -t "$threads" -tb "$threads" -np "$clients" \
    -c $((4096 * clients)) --cache-reuse 256 --port 11596 >"$work/llama.log" 2>&1 &
  wait_for http://127.0.0.1:11596/health
  ask http://127.0.0.1:11596 "$work/llama.$round.json"
  kill %1; wait %1 2>/dev/null || true
  echo "round $round done" >&2
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {name: [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)] for name in ("hearth", "llama")}
med = lambda name, wave, key: statistics.median(r["waves"][wave][key] for r in runs[name])
print("| wave | hearth TTFT p50 / max ms | llama-server TTFT p50 / max ms | TTFT p50 ratio | hearth tok/s | llama-server tok/s | tok/s ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for wave in range(len(runs["hearth"][0]["waves"])):
    h50, l50 = med("hearth", wave, "ttft_p50_ms"), med("llama", wave, "ttft_p50_ms")
    ht, lt = med("hearth", wave, "aggregate_tok_s"), med("llama", wave, "aggregate_tok_s")
    label = "first (cold start)" if wave == 0 else f"question {wave + 1}"
    print(f"| {label} | {h50:.0f} / {med('hearth', wave, 'ttft_max_ms'):.0f} | {l50:.0f} / {med('llama', wave, 'ttft_max_ms'):.0f} "
          f"| {h50 / l50:.2f}x | {ht:.1f} | {lt:.1f} | {ht / lt:.2f}x |")
PY
