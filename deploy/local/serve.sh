#!/usr/bin/env bash
# ./loraflow serve: the serving service in the foreground on one exported model, without Kafka — the
# OpenAI and KServe APIs over FILE.onnx (config.json and tokenizer.json beside it). Ctrl-C stops it.
set -euo pipefail
: "${JAVA_HOME:?run through ./loraflow serve, which finds a JDK >= 25}"
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
usage: ./loraflow serve --model FILE.onnx|DIR [--port P] [--grpc-port P] [--host H] [--name N] [--api-key K]

Serves one exported model (as ./loraflow export-onnx writes it) over HTTP until Ctrl-C:
OpenAI /v1/completions and /v1/chat/completions, KServe /v2, health on /q/health; KServe v2 over gRPC
on its own port.
  --model    the .onnx file, with config.json (and tokenizer.json for text) beside it, or the directory
             that holds exactly one .onnx file
  --port     HTTP port (default 8080; 0 picks a free one)
  --grpc-port  gRPC port (default 9000; 0 picks a free one, which the log names)
  --host     address both listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --name     the model's name in the APIs (default loraflow)
  --api-key  key for the admin API (adapters, swaps); default LORAFLOW_API_KEYS, none = admin refused
Other settings are serving's environment variables (LORAFLOW_SERVING_MAX_BATCH_SIZE, ...), see
serving/src/main/resources/application.properties; LORAFLOW_SERVING_ADMIN_ROOTS (where the admin API may
load models and adapters from, default the model's directory), LORAFLOW_JAVA_OPTS (extra JVM options).
USAGE
}

MODEL=""
PORT=8080
GRPC_PORT=9000
HOST=127.0.0.1
NAME=loraflow
API_KEYS="${LORAFLOW_API_KEYS:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --model|--port|--grpc-port|--host|--name|--api-key)
      [ $# -ge 2 ] || { echo "loraflow serve: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --model) MODEL="$2" ;;
        --port) PORT="$2" ;;
        --grpc-port) GRPC_PORT="$2" ;;
        --host) HOST="$2" ;;
        --name) NAME="$2" ;;
        --api-key) API_KEYS="$2" ;;
      esac
      shift
      ;;
    -h|--help) usage; exit 0 ;;
    *) echo "loraflow serve: unknown argument '$1' (./loraflow serve --help lists the options)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$MODEL" ] || { echo "loraflow serve: --model is required (./loraflow serve --help lists the options)" >&2; exit 2; }
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -le 65535 ] || { echo "loraflow serve: --port needs a port number, got '$PORT'" >&2; exit 2; }
[[ "$GRPC_PORT" =~ ^[0-9]+$ ]] && [ "$GRPC_PORT" -le 65535 ] || {
  echo "loraflow serve: --grpc-port needs a port number, got '$GRPC_PORT'" >&2
  exit 2
}
[ -n "$NAME" ] || { echo "loraflow serve: --name must not be empty" >&2; exit 2; }

if [ -d "$MODEL" ]; then
  shopt -s nullglob
  candidates=("$MODEL"/*.onnx)
  shopt -u nullglob
  case "${#candidates[@]}" in
    0) echo "loraflow serve: $MODEL holds no .onnx file (export one with ./loraflow export-onnx)" >&2; exit 2 ;;
    1) MODEL="${candidates[0]}" ;;
    *) echo "loraflow serve: $MODEL holds several .onnx files (${candidates[*]##*/}); name one" >&2; exit 2 ;;
  esac
elif [ ! -f "$MODEL" ]; then
  echo "loraflow serve: $MODEL: no such file or directory" >&2
  exit 2
elif [[ "$MODEL" != *.onnx ]]; then
  echo "loraflow serve: $MODEL is not an .onnx file" >&2
  exit 2
fi
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
[ -f "$(dirname "$MODEL")/config.json" ] || {
  echo "loraflow serve: $MODEL needs config.json beside it (./loraflow export-onnx writes it)" >&2
  exit 2
}

SERVING_JAR="$(service_jar serving)"
ensure_jars serving "$SERVING_JAR"

echo "loraflow: serving $MODEL as '$NAME' on http://$HOST:$PORT, gRPC on $HOST:$GRPC_PORT (Ctrl-C stops)" >&2
# Serving reads these; the merged-models topic is not followed, so no broker is needed. The admin API
# (with --api-key) loads models and adapters from the served model's directory unless
# LORAFLOW_SERVING_ADMIN_ROOTS names others.
export LORAFLOW_SERVING_MODEL_PATH="$MODEL" LORAFLOW_SERVING_MODEL_NAME="$NAME" LORAFLOW_API_KEYS="$API_KEYS" \
  LORAFLOW_SERVING_ADMIN_ROOTS="${LORAFLOW_SERVING_ADMIN_ROOTS:-$(dirname "$MODEL")}" \
  LORAFLOW_SERVING_FOLLOW_MODELS=false QUARKUS_HTTP_HOST="$HOST" QUARKUS_HTTP_PORT="$PORT" \
  QUARKUS_GRPC_SERVER_HOST="$HOST" QUARKUS_GRPC_SERVER_PORT="$GRPC_PORT"
# shellcheck disable=SC2086
exec "$JAVA_HOME/bin/java" "${JAVA_OPTIONS[@]}" ${LORAFLOW_JAVA_OPTS:-} -jar "$SERVING_JAR"
