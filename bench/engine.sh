#!/usr/bin/env bash
# Prompt processing and generation speed, and peak memory, of hearth's engine on the two test
# models, beside llama.cpp's own llama-bench when its path is given. Same workload for both:
# -p 512 random prompt tokens and -n 128 generated tokens from an empty cache, each the mean
# (llama-bench) or median (hearth) of -r runs after a warm-up. The two alternate for ROUNDS
# rounds and the table shows the median round, so drift on a shared machine hits both alike.
#
# Usage: bench/engine.sh [PATH/TO/llama-bench]
#   THREADS (default 2), REPS (5), ROUNDS (3), PROMPT (512), GEN (128), HEARTH_TEST_MODELS,
#   MODELS (GGUF paths, space-separated; default: the two test models)
# Run it on a quiet machine: a busy core slows every figure here.
set -euo pipefail
cd "$(dirname "$0")/.."

llama_bench=${1:-}
threads=${THREADS:-2}
reps=${REPS:-5}
rounds=${ROUNDS:-3}
prompt=${PROMPT:-512}
gen=${GEN:-128}
models=${HEARTH_TEST_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth/test-models}

scripts/fetch-test-models "$models" >/dev/null
cargo build --quiet --release -p hearth
hearth=target/release/hearth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure RUNTIME MODEL: appends "pp tg peak_rss_kib" to $work/RUNTIME.
measure() {
  local runtime=$1 path=$2 out pp tg rss
  if [ "$runtime" = hearth ]; then
    # hearth's own peak (reset at the model's load): the process's high-water mark would also
    # count the buffer of the machine record's memory-bandwidth measurement.
    out=$("$hearth" bench "$path" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" --json 2>/dev/null)
    read -r pp tg rss < <(python3 -c '
import json, sys
target = json.load(sys.stdin)["targets"][0]
fixed = target["fixed"]
print("%.1f %.1f %.0f" % (fixed["prompt_tokens_per_second"]["median"], fixed["generation_tokens_per_second"]["median"], target["peak_rss_mib"] * 1024))' <<<"$out")
    echo "$rss" >"$work/rss"
  else
    out=$(/usr/bin/time -f %M -o "$work/rss" "$llama_bench" -m "$path" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" -o json 2>/dev/null)
    read -r pp tg < <(python3 -c '
import json, sys
rows = json.load(sys.stdin)
pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
print("%.1f %.1f" % (pp, tg))' <<<"$out")
  fi
  echo "$pp $tg $(cat "$work/rss")" >>"$work/$runtime"
}

# summary RUNTIME: "pp tg rss_mib", medians over the rounds (rss: the largest).
summary() {
  python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
col = lambda i: [r[i] for r in rows]
print("%.1f %.1f %.0f" % (statistics.median(col(0)), statistics.median(col(1)), max(col(2)) / 1024))' "$work/$1"
}

printf '| model | runtime | pp%s tok/s | tg%s tok/s | peak RSS MiB |\n|---|---|---:|---:|---:|\n' "$prompt" "$gen"
for model in ${MODELS:-$models/SmolLM2-135M-Instruct.Q4_1.gguf $models/gemma-3-270m-q4_k_m.gguf}; do
  rm -f "$work/hearth" "$work/llama"
  for _ in $(seq "$rounds"); do
    measure hearth "$model"
    [ -z "$llama_bench" ] || measure llama "$model"
  done
  read -r pp tg rss < <(summary hearth)
  printf '| %s | hearth | %s | %s | %s |\n' "$(basename "$model")" "$pp" "$tg" "$rss"
  if [ -n "$llama_bench" ]; then
    read -r lpp ltg lrss < <(summary llama)
    printf '| %s | llama-bench | %s | %s | %s |\n' "$(basename "$model")" "$lpp" "$ltg" "$lrss"
    python3 -c "print('| | hearth / llama.cpp | %.1f%% | %.1f%% | %.1f%% |' % (100*$pp/$lpp, 100*$tg/$ltg, 100*$rss/$lrss))"
  fi
done
