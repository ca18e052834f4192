# Sourced by the scripts that run hearth beside llama-server (`. bench/servers.sh`): where the
# test models are (`models`), and
#   bench_setup NAME GGUF  fetches the test models, builds hearth, and makes a scratch store
#                          holding GGUF as NAME; sets `work`, removed on exit with every
#                          server the script started;
#   wait_for URL           waits up to a minute for a server to answer.

bench_setup() {
  local name=$1 gguf=$2
  scripts/fetch-test-models "$models" >/dev/null
  cargo build --quiet --release -p hearth
  work=$(mktemp -d)
  export HEARTH_MODELS=$work/store
  export HEARTH_KEYS_FILE=$work/keys.json # the user's keys would make the server want one
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
  printf 'FROM %s\n' "$gguf" >"$work/Modelfile"
  target/release/hearth create "$name" -f "$work/Modelfile" >/dev/null 2>&1
}

wait_for() { for _ in $(seq 60); do curl -sf "$1" >/dev/null && return 0; sleep 1; done; echo "no answer from $1" >&2; exit 1; }

models=${HEARTH_TEST_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth/test-models}
