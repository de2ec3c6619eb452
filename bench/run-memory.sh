#!/usr/bin/env bash
# Big models on one machine (issue 13): for each shape given (default tinyllama; 8b adds Llama-3.1-8B), a random
# BF16 checkpoint from ./loraflow init-model --dtype bf16 (made once, kept in $WORK), then
#   train  (BF16 base, and NF4 for 8b; 8b with --gradient-checkpointing): peak RSS (GNU time's maximum resident
#          set, mapped weights included), seconds, tokens/s and seconds of the last step; for tinyllama also the
#          compute efficiency: 4 · parameters · tokens/s FLOP/s against the best OpenBLAS sgemm GFLOP/s of
#          bench/openblas_reference.py measured just before (the machine's fp32 peak as bench sees it);
#   merge  of the trained adapter against cp of the checkpoint, and cp followed by sync of the copy (merge forces
#          its output to disk before renaming it into place): seconds, peak RSS and CPU seconds; merge twice, the
#          adapter as train wrote it (its base digest recorded: hashed as the merge reads the base, one pass) and a
#          plain PEFT copy of it (no digest: the base hashed in a pass of its own first).
# Rows go to $WORK/memory-<time>.md as a markdown table, and to stdout.
# Settings from the environment: WORK (/tmp/loraflow-bench-memory), STEPS (3), LORAFLOW_JAVA_OPTS.
# Disk: tinyllama 2.2 GB checkpoint + 2.2 GB merged; 8b 16 GB + 16 GB. Needs GNU time (/usr/bin/time).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow bench-memory [tinyllama] [8b]   (default: tinyllama)"
  exit 0
fi
WORK="${WORK:-/tmp/loraflow-bench-memory}"
STEPS="${STEPS:-3}"
SHAPES=("$@")
[ ${#SHAPES[@]} -gt 0 ] || SHAPES=(tinyllama)
for shape in "${SHAPES[@]}"; do
  case "$shape" in
    tinyllama|8b) ;;
    -*) usage_error run-memory "unknown option '$shape'" ;;
    *) usage_error run-memory "unknown shape '$shape'; expected tinyllama or 8b" ;;
  esac
done
[ -x /usr/bin/time ] || { echo "run-memory: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
mkdir -p "$WORK"
REPORT="$WORK/memory-$(date -u +%Y%m%dT%H%M%SZ).md"
LF="$ROOT/loraflow"

# init-model arguments, batch, sequence length, rank and targets of each shape (the issue's table)
shape_args() {
  case "$1" in
    tinyllama) echo "--layers 22 --hidden 2048 --heads 32 --kv-heads 4 --intermediate 5632 --vocab 32000 --context 2048" ;;
    8b) echo "--layers 32 --hidden 4096 --heads 32 --kv-heads 8 --intermediate 14336 --vocab 128256 --context 8192" ;;
  esac
}
train_args() {
  case "$1" in
    tinyllama) echo "--batch-size 2 --seq-len 128 --rank 8 --targets q_proj,k_proj,v_proj,o_proj" ;;
    8b) echo "--batch-size 1 --seq-len 256 --rank 16 --targets q_proj,v_proj --gradient-checkpointing" ;;
  esac
}

# Runs a command under GNU time; prints "seconds peak_rss_kb cpu_seconds" (user + system) and leaves its output in
# $WORK/last.log.
measured() {
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$@" > "$WORK/last.log" 2>&1 || { tail -n 5 "$WORK/last.log" >&2; return 1; }
  awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$WORK/time.txt"
}
gb() { awk -v kb="$1" 'BEGIN { printf "%.2f GB", kb / 1048576 }'; }

{
  echo "| model | step | seconds | peak RSS | notes |"
  echo "|---|---|---|---|---|"
} | tee "$REPORT"
for shape in "${SHAPES[@]}"; do
  base="$WORK/$shape-bf16"
  if [ ! -f "$base/config.json" ]; then
    rm -rf "$base"
    read -r secs rss _ <<<"$(measured "$LF" init-model --arch llama $(shape_args "$shape") --dtype bf16 --seed 1 --out "$base")"
    echo "| $shape | init-model --dtype bf16 | $secs | $(gb "$rss") | $(du -h "$base/model.safetensors" | cut -f1) checkpoint |" | tee -a "$REPORT"
  fi
  checkpoint_kb=$(( $(stat -c %s "$base/model.safetensors") / 1024 ))
  data="$WORK/$shape-data.jsonl"
  python3 -c "
import json, random, sys
r = random.Random(1); vocab = int(json.load(open('$base/config.json'))['vocab_size'])
for _ in range(64): print(json.dumps({'input_ids': [r.randrange(vocab) for _ in range(256)]}))" > "$data"
  # quantization and extra flag of each train run: tinyllama with default flags, then with gradient checkpointing
  variants=("none" "none --gradient-checkpointing")
  [ "$shape" = 8b ] && variants=("none" "nf4")
  for variant in "${variants[@]}"; do
    read -r quantization extra <<<"$variant"
    adapter="$WORK/$shape-adapter-$quantization${extra:+-checkpointed}"
    rm -rf "$adapter"
    read -r secs rss _ <<<"$(measured "$LF" train --base "$base" --data "$data" --out "$adapter" --steps "$STEPS" \
        --quantize "$quantization" $(train_args "$shape") $extra)"
    speed="$(grep -o '[0-9.]* tok/s' "$WORK/last.log" | tail -n 1 || true)"
    tokens_per_step=$(( $(echo "$(train_args "$shape")" | awk '{print $2 * $4}') ))
    step_secs="$(awk -v s="${speed%% *}" -v t="$tokens_per_step" 'BEGIN { if (s > 0) printf "%.1f", t / s; else print "?" }')"
    echo "| $shape | train BF16 base, --quantize $quantization$([ "$shape" = 8b ] && echo " --gradient-checkpointing") $extra, $STEPS steps | $secs | $(gb "$rss") ($(awk -v r="$rss" -v c="$checkpoint_kb" 'BEGIN { printf "%.2f", r / c }')× checkpoint) | $speed (mean), $step_secs s/step |" | tee -a "$REPORT"
    if [ "$shape" = tinyllama ] && [ -z "$extra" ]; then
      peak="$(python3 "$ROOT/bench/openblas_reference.py" | python3 -c "import json, sys; print(max(r['gflops'] for r in json.load(sys.stdin)['results']))")"
      parameters=$(( $(stat -c %s "$base/model.safetensors") / 2 ))
      echo "| $shape | training step compute, 4 · $parameters parameters · tokens/s | | | $(awk -v s="${speed%% *}" -v p="$parameters" -v peak="$peak" 'BEGIN { g = 4 * p * s / 1e9; printf "%.1f GFLOP/s = %.0f %% of OpenBLAS %.1f GFLOP/s", g, 100 * g / peak, peak }') |" | tee -a "$REPORT"
    fi
  done
  merged="$WORK/$shape-merged"
  rm -rf "$merged" "$WORK/$shape-copy.safetensors"
  sync
  read -r cp_secs cp_rss cp_cpu <<<"$(measured cp "$base/model.safetensors" "$WORK/$shape-copy.safetensors")"
  echo "| $shape | cp model.safetensors | $cp_secs | $(gb "$cp_rss") | $cp_cpu s CPU |" | tee -a "$REPORT"
  rm -f "$WORK/$shape-copy.safetensors"
  sync
  read -r cps_secs _ cps_cpu <<<"$(measured sh -c "cp '$base/model.safetensors' '$WORK/$shape-copy.safetensors' && sync '$WORK/$shape-copy.safetensors'")"
  echo "| $shape | cp model.safetensors && sync | $cps_secs | | $cps_cpu s CPU |" | tee -a "$REPORT"
  rm -f "$WORK/$shape-copy.safetensors"
  # the adapter of `train` records the base's digest (trainer_state.json), so the base is hashed from the merge's own
  # reads, in one pass (as the merger service does with the checkpoint event's); a plain PEFT copy of it records none,
  # and the base is hashed in a pass of its own first
  plain="$WORK/$shape-adapter-plain"
  rm -rf "$plain"
  mkdir -p "$plain"
  cp "$WORK/$shape-adapter-none/adapter_config.json" "$WORK/$shape-adapter-none/adapter_model.safetensors" "$plain/"
  for adapter in "$WORK/$shape-adapter-none" "$plain"; do
    read -r secs rss cpu <<<"$(measured "$LF" merge --base "$base" --adapter "$adapter" --out "$merged")"
    passes="$(grep -o '"base_passes":[0-9]' "$WORK/last.log" | cut -d: -f2)"
    echo "| $shape | merge, $passes pass(es) over the base | $secs | $(gb "$rss") | $cpu s CPU; $(awk -v m="$secs" -v c="$cp_secs" -v s="$cps_secs" 'BEGIN { printf "%.1f× cp, %.1f× cp && sync", m / c, m / s }') |" | tee -a "$REPORT"
    rm -rf "$merged"
    sync
  done
done
echo "report: $REPORT"
