#!/usr/bin/env bash
# Issue 14's quantized serving figures in one run: a Llama-shaped model (random weights; default 12 x 768, vocab
# 32000) exported F32, int8 and int4 (export-onnx --quantize, each --verify'd: logit error, held-out loss delta on
# random token sequences), decoded batch 1, 256 greedy tokens, at 1 and 2 ONNX Runtime threads with the engine's
# session options (dev.loraflow.benchmarks.QuantizedDecode), and the same weights as GGUF F32/Q8_0/Q4_0 through llama.cpp at 1 and 2 threads
# (../shared/anchors/llamacpp/run.sh, node-llama-cpp 3.21.1). Prints the table; JSON lines go to
# bench-results/quantized-<time>.jsonl.
# usage: run-quantized.sh [--layers 12] [--hidden 768] [--heads 12] [--kv-heads N] [--intermediate N] [--vocab 32000]
#        [--tokens 256] [--rounds 3]
#        [--threads "1 2"] [--llama-threads "1 2"] [--preset NAME (instead of the shape; untied output heads only, e.g. tinyllama-1.1b)] [--anchor DIR]
# On a heavily loaded machine llama.cpp's 2-thread runs crawl (its threads spin at every barrier): --llama-threads 1.
# The defaults are the values shown; --anchor defaults to ../shared/anchors/llamacpp beside the repository.
# Environment: JAVA_HOME (a JDK >= 25; ./loraflow finds one), TMPDIR (parent of the work directory, default /tmp).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow bench-serving --quantized [OPTIONS]"
  exit 0
fi
cd "$ROOT"
: "${JAVA_HOME:?run through ./loraflow bench-serving --quantized, which finds a JDK >= 25}"
layers=12 hidden=768 heads=12 kv_heads="" intermediate="" vocab=32000 tokens=256 rounds=3 threads="1 2" llama_threads="1 2" preset="" anchor="$ROOT/../shared/anchors/llamacpp"
while [ $# -gt 0 ]; do
  case "$1" in
    --layers|--hidden|--heads|--kv-heads|--intermediate|--vocab|--tokens|--rounds|--threads|--llama-threads|--preset|--anchor)
      [ $# -ge 2 ] || usage_error run-quantized "$1 needs a value" ;;&
    --layers) layers=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    --kv-heads) kv_heads=$2; shift 2 ;;
    --intermediate) intermediate=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --llama-threads) llama_threads=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --anchor) anchor=$2; shift 2 ;;
    *) usage_error run-quantized "unknown argument '$1'" ;;
  esac
done
[ -x "$anchor/run.sh" ] || { echo "no llama.cpp anchor at $anchor (run.sh); give --anchor DIR" >&2; exit 2; }

JAR="$ROOT/benchmarks/target/benchmarks.jar"
SOURCES=("$ROOT/core/src/main" "$ROOT/onnx/src/main" "$ROOT/cli/src/main" "$ROOT/benchmarks/src/main")
if [ ! -f "$JAR" ] || [ -n "$(find "${SOURCES[@]}" -newer "$JAR" -print -quit)" ]; then
  echo "building the CLI and the benchmarks..." >&2
  ./mvnw -B -q -pl cli,benchmarks -am package -DskipTests >&2
fi

mkdir -p bench-results
RESULTS="$ROOT/bench-results/quantized-$(date +%Y%m%d-%H%M%S).jsonl"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/loraflow-quantized-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

shape=(--arch llama --layers "$layers" --hidden "$hidden" --heads "$heads" --vocab "$vocab" --context 1024)
[ -n "$kv_heads" ] && shape+=(--kv-heads "$kv_heads")
[ -n "$intermediate" ] && shape+=(--intermediate "$intermediate")
HF="$WORK/llama-${layers}x${hidden}"
[ -n "$preset" ] && { shape=(--preset "$preset"); HF="$WORK/$preset"; }
log "init-model ${shape[*]} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
./loraflow init-model "${shape[@]}" --out "$HF" >&2
# The anchor's GGUF writer reads lm_head.weight, which a model with tied embeddings does not have (Llama-3.2-1B's
# preset): say so now rather than after the exports and decodes.
if /usr/bin/python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("tie_word_embeddings") else 1)' "$HF/config.json"; then
  usage_error run-quantized "the llama.cpp anchor needs an untied output head; --preset ${preset:-?} ties it to the embeddings: give its shape with --layers/--hidden/--heads/--kv-heads/--intermediate/--vocab instead"
fi
# Held-out data for the loss delta: random token sequences (a random model has no task to keep).
/usr/bin/python3 - "$HF/config.json" > "$WORK/heldout.jsonl" <<'PY'
import json, random, sys
vocab = json.load(open(sys.argv[1]))["vocab_size"]
rng = random.Random(14)
for _ in range(8):
    print(json.dumps({"input_ids": [rng.randrange(vocab) for _ in range(64)]}))
PY
# label, --quantize, --quantize-embeddings: the linears alone, then the embedding int8 and the head quantized too (llama.cpp's
# Q8_0/Q4_0 files quantize them too; at vocab 32000 x 768 the float32 head is a third of the bytes read per token).
variants=("f32 f32 keep" "int8 int8 keep" "int8+emb int8 int8" "int4 int4 keep" "int4+emb int4 int8")
graphs=()
for variant in "${variants[@]}"; do
  read -r label q emb <<< "$variant"
  dir="$WORK/${label/+/-}"
  log "export-onnx --quantize $q --quantize-embeddings $emb --verify"
  extra=(); [ "$q" != f32 ] && extra=(--quantize-embeddings "$emb" --verify-data "$WORK/heldout.jsonl")
  ./loraflow export-onnx --model "$HF" --quantize "$q" --verify "${extra[@]}" --out "$dir/model.onnx" \
    | /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["kind"]="export"; d["graph"]=sys.argv[1]; print(json.dumps(d))' "$label" \
    | tee -a "$RESULTS" >&2
  graphs+=("$label=$dir/model.onnx")
done
log "ONNX Runtime decode, threads $threads, $tokens tokens, $rounds rounds"
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx2g -cp "$JAR" \
  dev.loraflow.benchmarks.QuantizedDecode --config "$HF/config.json" --threads "${threads// /,}" --tokens "$tokens" \
  --rounds "$rounds" "${graphs[@]}" \
  | tee -a "$RESULTS" >&2
for graph in "${graphs[@]}"; do rm -rf "$(dirname "${graph#*=}")"; done   # disk for the GGUF files
log "llama.cpp: F32, Q8_0, Q4_0 at threads $llama_threads"
"$anchor/run.sh" "$HF" "$tokens" "$llama_threads" | tee -a "$RESULTS" >&2
log "done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
/usr/bin/python3 - "$RESULTS" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours, export, llama = {}, {}, {}
for l in lines:
    if l.get("engine") == "onnxruntime":
        ours.setdefault(l["graph"], {})[l["threads"]] = l["decode_tokens_per_s"]
    elif l.get("kind") == "export":
        export[l["graph"]] = l
    elif l.get("engine", "").startswith("llama.cpp"):
        llama.setdefault(l["quant"], {})[l["threads"]] = l["decode_tokens_per_s"]
nan = float("nan")
f32 = max(ours["f32"].values())
print("| loraflow graph | ORT 1 thread | ORT 2 threads | vs own F32 (faster of each) | llama.cpp | 1 thread | 2 threads"
      " | ours at 2 threads vs llama.cpp's faster | ours vs llama.cpp, each at its faster | max abs logit error (relative)"
      " | held-out loss delta |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for graph, by_threads in ours.items():
    theirs = {"f32": "f32", "int8": "q8_0", "int4": "q4_0"}[graph.split("+")[0]]
    t = llama.get(theirs, {})
    best, mine = (max(t.values()) if t else nan), max(by_threads.values())
    e = export.get(graph, {})
    err = (f'{e["max_abs_logit_error"]:.3g} ({100 * e["relative_logit_error"]:.2f} %)' if "relative_logit_error" in e
           else "F32 check: " + f'{e.get("max_abs_logit_error", nan):.2g}')
    loss = (f'{100 * e["loss_increase"]:+.3f} % ({e["f32_loss"]:.4f} → {e["quantized_loss"]:.4f})'
            if "loss_increase" in e else "—")
    print(f"| {graph} | {by_threads.get(1, nan):.2f} | {by_threads.get(2, nan):.2f} | {mine / f32:.2f}× | {theirs.upper()}"
          f" | {t.get(1, nan):.2f} | {t.get(2, nan):.2f} | {by_threads.get(2, nan) / best:.2f}× | {mine / best:.2f}× | {err} | {loss} |")
PY
echo "(figures in $RESULTS)" >&2
