#!/usr/bin/env bash
# LoRA training throughput side by side with PyTorch in one run: for each arch (arguments, default gpt2 llama)
# and each of ROUNDS rounds, the PyTorch step (bench/torch_lora_train.py) then loraflow's
# (TrainingThroughput), both on THREADS threads; their JSON lines go to bench-results/training-<time>.jsonl,
# their progress to the .log beside it, and the table compares the fastest run of each.
# An arch is gpt2, llama (GPT-2 small's size) or an init-model preset, which covers every family:
# tinyllama-1.1b, llama-3.2-1b, llama-3.2-3b, llama-3.1-8b, qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b,
# mistral-7b-v0.3, gemma-2-2b, phi-3-mini-4k. PyTorch has a reference for gpt2, llama, llama-3.2-1b and
# qwen2.5-0.5b; the others run loraflow alone. The presets are the released sizes, in float32.
# Settings from the environment: BATCH (4), SEQ (256), STEPS (5), WARMUP (2), ROUNDS (1), THREADS (2),
# HEAP, the JVM's -Xmx (by default what the arch needs at batch 4 × 256: 4g for gpt2 and llama, 8g for
# qwen2.5-0.5b, 12g for the 1.1-1.5 B presets, 24g up to 3.8 B, 48g for 7-8 B).
# Needs python3 with torch (Debian: apt-get install python3-torch).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow bench-training [ARCH...]   (default: gpt2 llama)"
  exit 0
fi
cd "$ROOT"
: "${JAVA_HOME:?set JAVA_HOME to a JDK >= 25}"
JAVA="$JAVA_HOME/bin/java"

BATCH="${BATCH:-4}"
SEQ="${SEQ:-256}"
STEPS="${STEPS:-5}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-1}"
THREADS="${THREADS:-2}"
HEAP="${HEAP:-}"
ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(gpt2 llama)
PRESETS="gpt2 llama tinyllama-1.1b llama-3.2-1b llama-3.2-3b llama-3.1-8b qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b mistral-7b-v0.3 gemma-2-2b phi-3-mini-4k"
TORCH_ARCHS="gpt2 llama llama-3.2-1b qwen2.5-0.5b"
for arch in "${ARCHS[@]}"; do
  case "$arch" in -*) usage_error run-training "unknown option '$arch'" ;; esac
  case " $PRESETS " in
    *" $arch "*) ;;
    *) usage_error run-training "unknown arch '$arch'; expected one of: $PRESETS" ;;
  esac
done

PYTHON=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c "import torch" 2>/dev/null; then PYTHON="$candidate"; break; fi
done
[ -n "$PYTHON" ] || { echo "run-training: needs python3 with torch for the PyTorch reference (apt-get install python3-torch)" >&2; exit 1; }
# Debian's torch is built with BLAS_INFO=generic: it calls whatever libblas.so.3 is, and without OpenBLAS that is
# netlib's reference BLAS, some 20x slower — a reference no comparison should be made against.
TORCH_BLAS="$("$PYTHON" -c 'import torch; torch.ones(64, 64) @ torch.ones(64, 64)
print(next((line.split()[-1] for line in open("/proc/self/maps") if "blas" in line), "none"))')"
case "$TORCH_BLAS" in
  *openblas*|*blis*|*mkl*) ;;
  *) echo "run-training: PyTorch's BLAS is $TORCH_BLAS, not an optimised one; install one (apt-get install libopenblas0-pthread) so the reference is fair" >&2; exit 1 ;;
esac

JAR="$ROOT/benchmarks/target/benchmarks.jar"
if [ ! -f "$JAR" ] || [ -n "$(find "$ROOT/core/src" "$ROOT/benchmarks/src" -newer "$JAR" -print -quit)" ]; then
  ./mvnw -B -q -pl benchmarks -am package -DskipTests
fi

mkdir -p "$ROOT/bench-results"
RESULTS="$ROOT/bench-results/training-$(date +%Y%m%d-%H%M%S).jsonl"
LOG="${RESULTS%.jsonl}.log"
: > "$RESULTS"

# The heap an arch's float32 weights, activations of batch 4 x 256 and logits need, with room for the GC.
default_heap() {
  case "$1" in
    gpt2|llama) echo 4g ;;
    qwen2.5-0.5b) echo 8g ;;
    tinyllama-1.1b|llama-3.2-1b|qwen2.5-1.5b) echo 12g ;;
    llama-3.2-3b|gemma-2-2b|phi-3-mini-4k) echo 24g ;;
    *) echo 48g ;;
  esac
}

# Runs one side, its JSON line appended to $RESULTS and its progress to $LOG; on failure shows the log's end.
measure() {
  local label="$1"
  shift
  echo "$label..." >&2
  echo "== $label (load average $(cut -d' ' -f1-3 /proc/loadavg))" >> "$LOG"
  "$@" >> "$RESULTS" 2>> "$LOG" || { tail -n 30 "$LOG" >&2; exit 1; }
}

for round in $(seq 1 "$ROUNDS"); do
  for arch in "${ARCHS[@]}"; do
    case " $TORCH_ARCHS " in
      *" $arch "*)
        measure "PyTorch $arch (round $round of $ROUNDS)" "$PYTHON" bench/torch_lora_train.py --arch "$arch" \
          --batch-size "$BATCH" --seq-len "$SEQ" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" ;;
    esac
    measure "loraflow $arch (round $round of $ROUNDS)" "$JAVA" --add-modules jdk.incubator.vector \
      --enable-native-access=ALL-UNNAMED -Xmx"${HEAP:-$(default_heap "$arch")}" -Dloraflow.threads="$THREADS" -cp "$JAR" \
      dev.loraflow.benchmarks.TrainingThroughput --arch "$arch" --batch-size "$BATCH" --seq-len "$SEQ" \
      --steps "$STEPS" --warmup "$WARMUP"
  done
done
"$PYTHON" bench/training_report.py "$RESULTS" | tee "${RESULTS%.jsonl}.txt"
echo "(raw results in $RESULTS, progress in $LOG)" >&2
