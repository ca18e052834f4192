#!/usr/bin/env bash
# Time to first token of a question about a ~3,000-token document right after a server
# restart (bench/restart.py), with hearth's saved prompt cache and without, and with
# llama.cpp's llama-server (which keeps nothing across a restart), same model and threads, in
# alternating rounds. With the cache, hearth is first asked another question about the
# document (a cold prefill, which saves it), then restarted. Each server has the model loaded
# before the timed question, so load time is not counted. Prints the median TTFTs and ratios.
#
# Usage: bench/restart.sh PATH/TO/llama-server
#   THREADS (default 2), ROUNDS (2), LLAMA_PRELOAD
set -euo pipefail
cd "$(dirname "$0")/.."

llama_server=${1:?usage: bench/restart.sh PATH/TO/llama-server}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}

. bench/servers.sh
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
bench_setup smollm2-bench "$gguf"
hearth_url=http://127.0.0.1:11597
ask() { python3 bench/restart.py --url "$1" --model smollm2-bench --question "$2"; }
hearth() { # hearth with prompt cache $1: started, the model loaded
  HEARTH_PROMPT_CACHE=$1 target/release/hearth serve --host "${hearth_url#http://}" --threads "$threads" \
    2>>"$work/hearth.log" &
  wait_for "$hearth_url/"
  curl -sf "$hearth_url/api/generate" -d '{"model": "smollm2-bench"}' >/dev/null
}
stop() { kill %1; wait %1 2>/dev/null || true; }

for round in $(seq "$rounds"); do
  rm -rf "$HEARTH_MODELS/prompt-cache"
  hearth 2GiB
  ask "$hearth_url" 0 >"$work/cold.$round.json"
  stop
  hearth 2GiB
  ask "$hearth_url" 1 >"$work/saved.$round.json"
  stop

  hearth 0
  ask "$hearth_url" 1 >"$work/unsaved.$round.json"
  stop

  LD_PRELOAD=${LLAMA_PRELOAD:-} "$llama_server" -m "$gguf" -t "$threads" -tb "$threads" -c 4096 \
    --port 11598 >"$work/llama.log" 2>&1 &
  wait_for http://127.0.0.1:11598/health
  ask http://127.0.0.1:11598 1 >"$work/llama.$round.json"
  stop
  echo "round $round done" >&2
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {name: [json.load(open(f"{work}/{name}.{r}.json")) for r in range(1, rounds + 1)]
        for name in ("cold", "saved", "unsaved", "llama")}
ttft = {name: statistics.median(r["ttft_ms"] for r in rs) for name, rs in runs.items()}
print(f"document: {runs['saved'][0]['prompt_tokens']} prompt tokens; after the restart with the cache, "
      f"{runs['saved'][0]['cached_tokens']} of them restored")
print("| after a restart | TTFT ms (median) | each round | vs hearth without the cache | vs llama-server |")
print("|---|---:|---|---:|---:|")
for name, label in (("saved", "hearth, saved prompt cache"), ("unsaved", "hearth, --prompt-cache 0"),
                    ("llama", "llama-server"), ("cold", "hearth's first question (saves the cache)")):
    each = ", ".join(f"{r['ttft_ms']:.0f}" for r in runs[name])
    print(f"| {label} | {ttft[name]:.0f} | {each} | {ttft[name] / ttft['unsaved']:.3f}x | {ttft[name] / ttft['llama']:.3f}x |")
PY
