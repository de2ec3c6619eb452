#!/usr/bin/env bash
# A big model through the services (issue 13): ./loraflow up --detach in its own state directory, the base
# hard-linked (or copied) into its models root, one job over POST /jobs (LoRA r 16 on q,v, batch 1 × 256, gradient
# checkpointing, lora.quantize QUANTIZE), STEPS batches of the JSONL's first examples on loraflow.training.batches
# through kcat as user producer; then the job's final status, the merger's outcome for its checkpoint
# (GET /merges/JOB/STEPS) and the peak RSS (VmHWM) of every service, sampled every 5 s to rss.txt. With GRAPHS the
# merger publishes those graphs (loraflow.merger.graphs, e.g. int4: the 8 B model's F32 graph is 32 GB), its merged
# model in MERGED_DTYPE (default base), each quantized graph measured on the HELDOUT last lines of DATA (default 2)
# cut to HELDOUT_TOKENS (64); then serving's load of the announced model is awaited and answers one completion.
# usage: bench/run-8b-services.sh BASE_DIR DATA.jsonl [nf4|int8|none] [STEPS]
#   BASE_DIR: a Hugging Face directory (e.g. ./loraflow bench-memory 8b's $WORK/8b-bf16); DATA: {"input_ids": [...]}
#   lines. Environment: WORK (/tmp/loraflow-8b-services: state, logs and results), GRAPHS, MERGED_DTYPE, HELDOUT,
#   HELDOUT_TOKENS. Needs kcat, curl and python3.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 2 ] || { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BASE="$1" DATA="$2" QUANTIZE="${3:-nf4}" STEPS="${4:-1}"
WORK="${WORK:-/tmp/loraflow-8b-services}"
export LORAFLOW_HOME="$WORK/home"
OUT="$WORK/out-$QUANTIZE-$(date -u +%H%M%S)"
mkdir -p "$OUT" "$LORAFLOW_HOME/models"
[ -e "$LORAFLOW_HOME/models/base" ] || cp -al "$BASE" "$LORAFLOW_HOME/models/base" 2>/dev/null \
  || cp -a "$BASE" "$LORAFLOW_HOME/models/base"
log() { echo "$(date -u +%T) $*" | tee -a "$OUT/timeline.txt"; }
if [ -n "${GRAPHS:-}" ]; then
  # Held out: the last lines of DATA (the job trains on its first STEPS), cut short so that the 8 B model's loss on
  # them takes a minute or two on each side, Java and ONNX Runtime.
  tail -n "${HELDOUT:-2}" "$DATA" | python3 -c 'import json, sys
for line in sys.stdin:
    print(json.dumps({"input_ids": json.loads(line)["input_ids"][:int(sys.argv[1])]}))' "${HELDOUT_TOKENS:-64}" \
    > "$OUT/heldout.jsonl"
  export LORAFLOW_MERGER_GRAPHS="$GRAPHS" LORAFLOW_MERGER_DTYPE="${MERGED_DTYPE:-base}" \
    LORAFLOW_MERGER_QUANTIZE_VERIFY_DATA="$OUT/heldout.jsonl"
fi
hwm() { grep -E 'VmHWM' "/proc/$1/status" 2>/dev/null | tr -s ' \t' ' '; }
log "up"
"$ROOT/loraflow" up --detach > "$OUT/up.txt" 2>&1 || { log "up failed"; cat "$OUT/up.txt"; exit 1; }
# shellcheck disable=SC1091
. "$LORAFLOW_HOME/run.env"
trap '"$ROOT/loraflow" down > "$OUT/down.txt" 2>&1; log down' EXIT
# The broker runs Kafka in a child JVM.
KAFKA_PID=$(for p in /proc/[0-9]*; do [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$BROKER_PID" ] && basename "$p"; done | head -1)
sample() { echo "$(date -u +%T) trainer $(hwm "$TRAINER_PID") merger $(hwm "$MERGER_PID") serving $(hwm "$SERVING_PID") broker $(hwm "$BROKER_PID") kafka $(hwm "$KAFKA_PID")" >> "$OUT/rss.txt"; }
JOB="big-$QUANTIZE-$(date -u +%H%M%S)"
LORA="\"r\":16,\"alpha\":16,\"target_modules\":[\"q_proj\",\"v_proj\"]"
[ "$QUANTIZE" = none ] || LORA="$LORA,\"quantize\":\"$QUANTIZE\""
log "job $JOB"
curl -s -w ' HTTP %{http_code}\n' -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d \
  "{\"schema\":\"loraflow.training.job\",\"version\":1,\"job_id\":\"$JOB\",\"base_model\":\"base\",\"lora\":{$LORA},\"batch_size\":1,\"seq_len\":256,\"gradient_checkpointing\":true,\"total_steps\":$STEPS}" \
  "$TRAINER_URL/jobs" | tee -a "$OUT/timeline.txt"
head -n "$STEPS" "$DATA" | awk -v job="$JOB" '{printf "{\"schema\":\"loraflow.training.batch\",\"version\":1,\"job_id\":\"%s\",\"seq\":%d,\"examples\":[%s]}\n", job, NR-1, $0}' \
  | kcat -F "$KCAT_CONFIG" -P -t loraflow.training.batches -k "$JOB"
log "batches sent"
status=""
until case "$status" in *FINISHED*|*FAILED*) true ;; *) false ;; esac; do
  sleep 5
  sample
  status=$(curl -s "$TRAINER_URL/jobs/$JOB")
  echo "$(date -u +%T) $status" >> "$OUT/status.txt"
done
log "trainer: $status"
outcome=""
until case "$outcome" in *'"status"'*) true ;; *) false ;; esac; do
  sleep 5
  sample
  outcome=$(curl -s -H "Authorization: Bearer $API_KEY" "$MERGER_URL/merges/$JOB/$STEPS")
done
log "merger: $outcome"
sample
if [ -n "${GRAPHS:-}" ] && case "$outcome" in *'"merged"'*) true ;; *) false ;; esac; then
  # The merged event as the merger stored it (what serving checks the topic's record against).
  find "$LORAFLOW_HOME" -name "merge-$JOB-$STEPS.outcome.json" -exec cp {} "$OUT/" \; 2>/dev/null
  models="" deadline=$((SECONDS + 3600))
  until case "$models" in *"\"$JOB\""*'"loaded":true'*) true ;; *) false ;; esac || [ "$SECONDS" -ge "$deadline" ]; do
    sleep 5
    sample
    models=$(curl -s -H "Authorization: Bearer $API_KEY" "$SERVING_URL/v1/models")
  done
  log "serving: $models"
  answer=$(curl -s -w ' HTTP %{http_code}' -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$JOB\",\"prompt\":\"The capital of France is\",\"max_tokens\":4,\"temperature\":0}" \
    "$SERVING_URL/v1/completions")
  log "completion: $answer"
  sample
fi
log "peak RSS: $(tail -1 "$OUT/rss.txt")"
log "disk: $(du -sh "$LORAFLOW_HOME" | cut -f1) under $LORAFLOW_HOME; $(df -h "$LORAFLOW_HOME" | awk 'NR == 2 {print $4}') free"
cp "$LORAFLOW_HOME"/logs/*.log "$OUT/"
