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
#        [--int4-levers LIST (e.g. "b32 b128"; off by default)] [--session-config "KEY=VALUE ..."]
# On a heavily loaded machine llama.cpp's 2-thread runs crawl (its threads spin at every barrier): --llama-threads 1.
# --int4-levers LIST: where an int4 token's time goes and what the export's int4 options change, instead of the five
# graphs: F32 and int4 + int8 embeddings as the words of LIST name them (b32, b64, b128: MatMulNBits blocks of 32, 64,
# 128; b32-zp: with zero points; b32-acc0: accuracy_level 0, float compute); each int4 graph's MatMulNBits nodes alone
# (bench/matmulnbits_only.py, timed per token by dev.loraflow.benchmarks.GraphRuns); --rounds rounds that each
# decode every graph once (QuantizedDecode --interleave), time the matmuls alone and run llama.cpp (F32, Q8_0,
# Q4_0), so that llama.cpp and ours share each round's load; medians over the rounds, one ORT profile per graph at
# 1 thread after them. Beside wall time, CPU time per token at 1 thread (ours: the JVM's process CPU time,
# llama.cpp's: bench/llama_cpu_time.py, Q4_0), which a loaded machine's time slicing does not inflate.
# --session-config: ONNX Runtime session configuration entries for our graphs.
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
levers="" session_config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --layers|--hidden|--heads|--kv-heads|--intermediate|--vocab|--tokens|--rounds|--threads|--llama-threads|--preset|--anchor|--session-config|--int4-levers)
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
    --session-config) session_config=$2; shift 2 ;;
    --int4-levers) levers=$2; shift 2 ;;
    *) usage_error run-quantized "unknown argument '$1'" ;;
  esac
done
[ -x "$anchor/run.sh" ] || { echo "no llama.cpp anchor at $anchor (run.sh); give --anchor DIR" >&2; exit 2; }
# Each: label, then export-onnx's quantization options (a label's part before '+' names llama.cpp's counterpart).
variants=("f32 --quantize f32" "int8 --quantize int8" "int8+emb --quantize int8 --quantize-embeddings int8"
  "int4 --quantize int4" "int4+emb --quantize int4 --quantize-embeddings int8")
if [ -n "$levers" ]; then
  variants=("f32 --quantize f32")
  for lever in $levers; do
    case "$lever" in
      b32|b64|b128) options="--int4-block-size ${lever#b}" ;;
      b32-zp) options="--int4-zero-points" ;;
      b32-acc0) options="--int4-accuracy-level 0" ;;
      *) usage_error run-quantized "--int4-levers takes b32, b64, b128, b32-zp and b32-acc0, got '$lever'" ;;
    esac
    variants+=("int4+emb/$lever --quantize int4 --quantize-embeddings int8 $options")
  done
fi

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
graphs=() matmuls=()
for variant in "${variants[@]}"; do
  read -r label options <<< "$variant"
  dir="$WORK/$(echo "$label" | tr '+/' '--')"
  log "export-onnx $options --verify"
  extra=(); [ "$options" != "--quantize f32" ] && extra=(--verify-data "$WORK/heldout.jsonl")
  # shellcheck disable=SC2086 # the options are words
  ./loraflow export-onnx --model "$HF" $options --verify "${extra[@]}" --out "$dir/model.onnx" \
    | /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["kind"]="export"; d["graph"]=sys.argv[1]; print(json.dumps(d))' "$label" \
    | tee -a "$RESULTS" >&2
  graphs+=("$label=$dir/model.onnx")
  if [ -n "$levers" ] && [ "$options" != "--quantize f32" ]; then
    /usr/bin/python3 "$ROOT/bench/matmulnbits_only.py" "$dir/model.onnx" "$dir/matmuls.onnx"
    matmuls+=("$label=$dir/matmuls.onnx")
  fi
done
java_main() {
  "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx2g -cp "$JAR" \
    "dev.loraflow.benchmarks.$1" --threads "${threads// /,}" --session-config "$session_config" "${@:2}"
}
# llama.cpp's work files (this model's GGUF files) beside ours, its node-llama-cpp install shared when there is one.
llama_work="$WORK/llamacpp"; mkdir -p "$llama_work"
[ -d /tmp/llamacpp-anchor/node_modules/node-llama-cpp ] && ln -s /tmp/llamacpp-anchor/node_modules "$llama_work/node_modules"
if [ -z "$levers" ]; then
  log "ONNX Runtime decode, threads $threads, $tokens tokens, $rounds rounds"
  java_main QuantizedDecode --config "$HF/config.json" --tokens "$tokens" --rounds "$rounds" "${graphs[@]}" \
    | tee -a "$RESULTS" >&2
  for graph in "${graphs[@]}"; do rm -rf "$(dirname "${graph#*=}")"; done   # disk for the GGUF files
  log "llama.cpp: F32, Q8_0, Q4_0 at threads $llama_threads"
  WORK="$llama_work" "$anchor/run.sh" "$HF" "$tokens" "$llama_threads" | tee -a "$RESULTS" >&2
else
  for round in $(seq "$rounds"); do
    log "round $round of $rounds: ONNX Runtime decode (threads $threads, $tokens tokens), MatMulNBits alone, llama.cpp"
    java_main QuantizedDecode --config "$HF/config.json" --tokens "$tokens" --rounds 1 --interleave "${graphs[@]}" \
      | tee -a "$RESULTS" >&2
    java_main GraphRuns --runs "$((tokens - 1))" --rounds 1 "${matmuls[@]}" | tee -a "$RESULTS" >&2
    WORK="$llama_work" "$anchor/run.sh" "$HF" "$tokens" "$llama_threads" | tee -a "$RESULTS" >&2
    /usr/bin/python3 "$ROOT/bench/llama_cpu_time.py" "$llama_work" "$llama_work/$(basename "$HF")-q4_0.gguf" q4_0 \
      "$tokens" 1 | tee -a "$RESULTS" >&2
  done
  log "ORT profiles at 1 thread, 64 tokens, 2 rounds"
  threads=1 java_main QuantizedDecode --config "$HF/config.json" --tokens 64 --rounds 2 --profile "${graphs[@]}" \
    | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line); d["kind"] = "profile"; print(json.dumps(d))' | tee -a "$RESULTS" >&2
fi
log "done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
/usr/bin/python3 - "$RESULTS" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# Figures repeated over rounds (--int4-levers) are collected, then their median taken.
ours, export, llama, llama_eval, matmuls, profiles = {}, {}, {}, {}, {}, {}
ours_cpu, matmuls_cpu, llama_cpu = {}, {}, {}
for l in lines:
    if l.get("engine") == "llama.cpp/cpu-time":
        llama_cpu.setdefault(l["quant"], []).append(l["cpu_ms_per_token"])
    elif l.get("kind") == "profile":
        profiles[l["graph"]] = l["profile_ms_per_token_by_op"]
    elif l.get("engine") == "onnxruntime" and "ms_per_run" in l:
        matmuls.setdefault(l["graph"], {}).setdefault(l["threads"], []).append(l["ms_per_run"])
        matmuls_cpu.setdefault(l["graph"], {}).setdefault(l["threads"], []).append(l["cpu_ms_per_run"])
    elif l.get("engine") == "onnxruntime":
        ours.setdefault(l["graph"], {}).setdefault(l["threads"], []).append(l["decode_tokens_per_s"])
        ours_cpu.setdefault(l["graph"], {}).setdefault(l["threads"], []).append(l["cpu_ms_per_token"])
    elif l.get("kind") == "export":
        export[l["graph"]] = l
    elif l.get("engine", "").startswith("llama.cpp"):
        llama.setdefault(l["quant"], {}).setdefault(l["threads"], []).append(l["decode_tokens_per_s"])
        if l.get("llama_eval_ms_per_token") is not None:
            llama_eval.setdefault(l["quant"], {}).setdefault(l["threads"], []).append(l["llama_eval_ms_per_token"])
median = lambda figures: {threads: statistics.median(values) for threads, values in figures.items()}
ours, llama, llama_eval = ({k: median(v) for k, v in d.items()} for d in (ours, llama, llama_eval))
matmuls, matmuls_cpu, ours_cpu = ({k: median(v) for k, v in d.items()} for d in (matmuls, matmuls_cpu, ours_cpu))
llama_cpu = {k: statistics.median(v) for k, v in llama_cpu.items()}
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
if matmuls:
    q4 = min(llama_eval.get("q4_0", {}).values(), default=nan)
    q4_wall = 1000 / max(llama.get("q4_0", {}).values(), default=nan)
    print()
    print("| int4 graph | whole token, ms (ORT 1 / 2 threads) | MatMulNBits alone, ms (1 / 2 threads) | their share"
          " | llama.cpp Q4_0 whole token, ms (eval / wall, its faster thread count) | MatMulNBits alone vs llama.cpp's whole token |")
    print("|---|---|---|---|---|---|")
    for graph, by_threads in matmuls.items():
        whole = {t: 1000 / v for t, v in ours.get(graph, {}).items()}
        share = "/".join(f"{100 * by_threads[t] / whole[t]:.0f} %" for t in sorted(by_threads) if t in whole)
        best = min(by_threads.values())
        print(f"| {graph} | {whole.get(1, nan):.2f} / {whole.get(2, nan):.2f} | {by_threads.get(1, nan):.2f} /"
              f" {by_threads.get(2, nan):.2f} | {share} | {q4:.2f} / {q4_wall:.2f} | {best / q4_wall:.2f}× |")
if matmuls_cpu:
    q4 = llama_cpu.get("q4_0", nan)
    print()
    print("| at 1 thread, CPU time | F32 or int4 graph, ms per token | MatMulNBits alone, ms per token | their share"
          " | llama.cpp Q4_0, ms per token | whole graph vs llama.cpp | MatMulNBits alone vs llama.cpp's whole token |")
    print("|---|---|---|---|---|---|---|")
    for graph, by_threads in ours_cpu.items():
        whole, alone = by_threads.get(1, nan), matmuls_cpu.get(graph, {}).get(1, nan)
        print(f"| {graph} | {whole:.2f} | {alone:.2f} | {100 * alone / whole:.0f} % | {q4:.2f} | {whole / q4:.2f}×"
              f" | {alone / q4:.2f}× |")
for graph, by_op in profiles.items():
    print(f"profile {graph} (1 thread, ms per token): " + ", ".join(f"{op} {ms}" for op, ms in list(by_op.items())[:8]))
PY
echo "(figures in $RESULTS)" >&2
