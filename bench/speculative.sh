#!/usr/bin/env bash
# Prompt lookup on repetitive output: one client asks for a code file back with one change
# (bench/repetitive.py, 600 greedy tokens), against `hearth serve --lookup`, `hearth serve`
# without it, and llama.cpp's llama-server with its defaults, same model and threads, in
# alternating rounds (this VM drifts). Prints generation tok/s and TTFT (median round), the
# share of drafted tokens accepted, and whether each answer is the text hearth gives
# without drafts.
#
# Usage: bench/speculative.sh PATH/TO/llama-server
#   MODEL (default gemma-3-270m-q4_k_m.gguf, a base model that copies), THREADS (2),
#   ROUNDS (3), TOKENS (600), FLASH_ATTN (auto), LLAMA_PRELOAD (an LD_PRELOAD for llama-server)
set -euo pipefail
cd "$(dirname "$0")/.."

llama_server=${1:?usage: bench/speculative.sh PATH/TO/llama-server}
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
tokens=${TOKENS:-600}
flash_attn=${FLASH_ATTN:-auto}

. bench/servers.sh
gguf=$models/${MODEL:-gemma-3-270m-q4_k_m.gguf}
bench_setup spec-bench "$gguf"
ask() { python3 bench/repetitive.py --url "$1" --model spec-bench --tokens "$tokens" >"$2"; }

for round in $(seq "$rounds"); do
  for lookup in on off; do
    flags=(--threads "$threads" --flash-attn "$flash_attn" --host 127.0.0.1:11593)
    [ "$lookup" = on ] && flags+=(--lookup)
    HEARTH_NUM_PARALLEL=1 target/release/hearth serve "${flags[@]}" 2>"$work/hearth.log" &
    wait_for http://127.0.0.1:11593/
    ask http://127.0.0.1:11593 "$work/hearth-$lookup.$round.json"
    kill %1; wait %1 2>/dev/null || true
  done
  LD_PRELOAD=${LLAMA_PRELOAD:-} "$llama_server" -m "$gguf" -t "$threads" -tb "$threads" -np 1 -c 4096 \
    -fa "$flash_attn" --port 11594 >"$work/llama.log" 2>&1 &
  wait_for http://127.0.0.1:11594/health
  ask http://127.0.0.1:11594 "$work/llama.$round.json"
  kill %1; wait %1 2>/dev/null || true
  echo "round $round done" >&2
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {name: [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)]
        for name in ("hearth-on", "hearth-off", "llama")}
plain = runs["hearth-off"][0]["text"]
med = lambda name, key: statistics.median(r[key] for r in runs[name])
def parted(text):
    if text == plain:
        return "identical"
    at = next(i for i, (a, b) in enumerate(zip(text + "\0", plain + "\0")) if a != b)
    return f"parts at character {at} of {len(plain)}"
labels = {"hearth-on": "hearth --lookup", "hearth-off": "hearth", "llama": "llama-server (defaults)"}
print("| server | generation tok/s (median) | each round | TTFT ms | drafts accepted | text against hearth without drafts |")
print("|---|---:|---|---:|---:|---|")
for name, label in labels.items():
    rates = ", ".join(f"{r['generation_tok_s']:.1f}" for r in runs[name])
    drafts = runs[name][0].get("drafts")
    share = "-"
    if drafts:
        a, r = drafts["accepted_prediction_tokens"], drafts["rejected_prediction_tokens"]
        share = f"{a}/{a + r} ({100 * a / (a + r):.0f}%)"
    texts = {parted(r["text"]) for r in runs[name]}
    print(f"| {label} | {med(name, 'generation_tok_s'):.1f} | {rates} | {med(name, 'ttft_ms'):.0f} | {share} | {'; '.join(sorted(texts))} |")
on = med("hearth-on", "generation_tok_s")
print(f"\nlookup / hearth without: {on / med('hearth-off', 'generation_tok_s'):.2f}x; "
      f"lookup / llama-server: {on / med('llama', 'generation_tok_s'):.2f}x")
PY
