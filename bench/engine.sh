#!/usr/bin/env bash
# Prompt processing and generation speed, and peak memory, of hearth's engine on the two test
# models, beside llama.cpp's own llama-bench when its path is given. Same workload for both:
# -p 512 random prompt tokens and -n 128 generated tokens from an empty cache, median of -r runs.
#
# Usage: bench/engine.sh [PATH/TO/llama-bench]
#   THREADS (default 2), REPS (default 5), PROMPT (512), GEN (128), HEARTH_TEST_MODELS
# Run it on a quiet machine: a busy core slows every figure here.
set -euo pipefail
cd "$(dirname "$0")/.."

llama_bench=${1:-}
threads=${THREADS:-2}
reps=${REPS:-5}
prompt=${PROMPT:-512}
gen=${GEN:-128}
models=${HEARTH_TEST_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth/test-models}

scripts/fetch-test-models "$models" >/dev/null
cargo build --quiet --release --example engine_bench -p hearth-engine
bench_bin=target/release/examples/engine_bench
rss_file=$(mktemp)
trap 'rm -f "$rss_file"' EXIT

# peak_rss_mib: the maximum resident set of the last command timed into $rss_file.
peak_rss_mib() { awk '{ printf "%.0f", $1 / 1024 }' "$rss_file"; }

printf '| model | runtime | pp%s tok/s | tg%s tok/s | peak RSS MiB |\n|---|---|---:|---:|---:|\n' "$prompt" "$gen"
for model in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
  path=$models/$model
  line=$(/usr/bin/time -f %M -o "$rss_file" "$bench_bin" "$path" -p "$prompt" -n "$gen" -t "$threads" -r "$reps")
  pp=$(sed -n "s/.* pp$prompt=\([0-9.]*\).*/\1/p" <<<"$line")
  tg=$(sed -n "s/.* tg$gen=\([0-9.]*\).*/\1/p" <<<"$line")
  printf '| %s | hearth | %s | %s | %s |\n' "$model" "$pp" "$tg" "$(peak_rss_mib)"
  if [ -n "$llama_bench" ]; then
    json=$(/usr/bin/time -f %M -o "$rss_file" "$llama_bench" -m "$path" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" -o json 2>/dev/null)
    read -r lpp ltg < <(python3 -c '
import json, sys
rows = json.load(sys.stdin)
rate = lambda key: next(r["avg_ts"] for r in rows if r[key] > 0)
print(f"{rate(\"n_prompt\"):.1f} {rate(\"n_gen\"):.1f}")' <<<"$json")
    printf '| %s | llama-bench | %s | %s | %s |\n' "$model" "$lpp" "$ltg" "$(peak_rss_mib)"
    python3 -c "print(f'| | hearth / llama.cpp | {$pp/$lpp:.1%} | {$tg/$ltg:.1%} | |')"
  fi
done
