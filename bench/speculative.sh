#!/usr/bin/env bash
# Speculative decoding on repetitive output: one client asks for a code file back with one
# change (bench/repetitive.py, 600 greedy tokens), against hearth drafting, hearth without
# drafts, and llama.cpp's llama-server, same model and threads, in alternating rounds (this VM
# drifts). Prints generation tok/s and TTFT (median round), the share of drafted tokens
# accepted, and whether each answer is the text hearth gives without drafts.
#   SPEC=lookup (default): `hearth serve --lookup` against llama-server's defaults.
#   SPEC=draft: a draft model. SmolLM2 is requantized here to Q8_0 (the model) and Q2_K (its
#     draft); `hearth serve --draft` against llama-server with the same draft (-md, and
#     --spec-type draft-simple, which this revision needs to draft with it) and
#     without one.
#
# Usage: bench/speculative.sh PATH/TO/llama-server
#   SPEC, MODEL (for lookup; default gemma-3-270m-q4_k_m.gguf, a base model that copies),
#   THREADS (2), ROUNDS (3), TOKENS (600), FLASH_ATTN (auto), LLAMA_PRELOAD (an LD_PRELOAD
#   for llama-server)
set -euo pipefail
cd "$(dirname "$0")/.."

llama_server=${1:?usage: bench/speculative.sh PATH/TO/llama-server}
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
tokens=${TOKENS:-600}
flash_attn=${FLASH_ATTN:-auto}

. bench/servers.sh
spec=${SPEC:-lookup}
if [ "$spec" = draft ]; then
  scripts/fetch-test-models "$models" >/dev/null
  cargo build --quiet --release -p hearth
  scratch=$(mktemp -d)
  gguf=$scratch/smollm2-q8_0.gguf draft=$scratch/smollm2-q2_k.gguf
  for kind in Q8_0 Q2_K; do
    target/release/hearth quantize -q "$kind" "$models/SmolLM2-135M-Instruct.Q4_1.gguf" \
      "$scratch/smollm2-$(echo "$kind" | tr A-Z a-z).gguf" >/dev/null 2>&1
  done
  hearth_spec=(--draft "$draft") llama_spec=(-md "$draft" --spec-type draft-simple) servers="hearth-on hearth-off llama-on llama"
else
  gguf=$models/${MODEL:-gemma-3-270m-q4_k_m.gguf}
  hearth_spec=(--lookup) llama_spec=() servers="hearth-on hearth-off llama"
fi
bench_setup spec-bench "$gguf"
[ -n "${scratch:-}" ] && mv "$scratch" "$work/models" && gguf=$work/models/${gguf##*/} && draft=$work/models/${draft##*/} &&
  hearth_spec=(--draft "$draft") llama_spec=(-md "$draft" --spec-type draft-simple)
ask() { python3 bench/repetitive.py --url "$1" --model spec-bench --tokens "$tokens" >"$2"; }

for round in $(seq "$rounds"); do
  for lookup in on off; do
    flags=(--threads "$threads" --flash-attn "$flash_attn" --host 127.0.0.1:11593)
    [ "$lookup" = on ] && flags+=("${hearth_spec[@]}")
    HEARTH_NUM_PARALLEL=1 target/release/hearth serve "${flags[@]}" 2>"$work/hearth.log" &
    wait_for http://127.0.0.1:11593/
    ask http://127.0.0.1:11593 "$work/hearth-$lookup.$round.json"
    kill %1; wait %1 2>/dev/null || true
  done
  for name in $servers; do
    case $name in llama) extra=() ;; llama-on) extra=("${llama_spec[@]}") ;; *) continue ;; esac
    LD_PRELOAD=${LLAMA_PRELOAD:-} "$llama_server" -m "$gguf" "${extra[@]}" -t "$threads" -tb "$threads" -np 1 \
      -c 4096 -fa "$flash_attn" --port 11594 >"$work/llama.log" 2>&1 &
    wait_for http://127.0.0.1:11594/health
    ask http://127.0.0.1:11594 "$work/$name.$round.json"
    kill %1; wait %1 2>/dev/null || true
  done
  echo "round $round done" >&2
done

python3 - "$work" "$rounds" "$spec" $servers <<'PY'
import json, statistics, sys
work, rounds, spec, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
runs = {name: [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)] for name in servers}
plain = runs["hearth-off"][0]["text"]
med = lambda name, key: statistics.median(r[key] for r in runs[name])
def parted(text):
    if text == plain:
        return "identical"
    at = next(i for i, (a, b) in enumerate(zip(text + "\0", plain + "\0")) if a != b)
    return f"parts at character {at} of {len(plain)}"
labels = {"hearth-on": f"hearth --{spec}", "hearth-off": "hearth", "llama-on": "llama-server -md (the same draft)",
          "llama": "llama-server (defaults)"}
labels = {name: label for name, label in labels.items() if name in runs}
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
print(f"\n{spec} / hearth without: {on / med('hearth-off', 'generation_tok_s'):.2f}x; "
      f"{spec} / llama-server: {on / med('llama', 'generation_tok_s'):.2f}x")
if "llama-on" in runs:
    print(f"{spec} / llama-server with the draft: {on / med('llama-on', 'generation_tok_s'):.2f}x")
PY
