#!/usr/bin/env bash
# The serving figures of issue 6 in one run (dev.loraflow.benchmarks.ServingLoad): a GPT-2-small-shaped model
# (random weights) exported merged with one r = 8 adapter and un-merged with eight, served by the packaged
# serving service in a child JVM. Prints the table; the figures go to bench-results/serving-<time>.json,
# progress and the servers' logs to the .log beside it. Extra arguments go to ServingLoad, e.g.
# --layers 6 --tokens 128 --clients 16 --waves 2 --rounds 3 --threads 2 --adapters 64; --device cuda runs the server
# and the direct loop on the GPU (the jars are then built with -Pcuda, onnxruntime_gpu).
# --quantized [ARGS]: the F32/int8/int4 decode figures beside llama.cpp instead (bench/run-quantized.sh).
# --help lists ServingLoad's options with their defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = --quantized ]; then
  shift
  exec "$ROOT/bench/run-quantized.sh" "$@"
fi
: "${JAVA_HOME:?run through ./loraflow bench-serving, which finds a JDK >= 25}"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
check_benchmark_arguments ServingLoad "$@"
cd "$ROOT"

JAR="$ROOT/benchmarks/target/benchmarks.jar"
SERVER="$ROOT/serving/target/quarkus-app/quarkus-run.jar"
SOURCES=("$ROOT/core/src/main" "$ROOT/onnx/src/main" "$ROOT/inference/src/main" "$ROOT/serving/src/main"
  "$ROOT/benchmarks/src/main")
PROFILE=()
previous=""
for arg in "$@"; do
  if [ "$previous" = "--device" ] && [ "$arg" = "cuda" ]; then
    PROFILE=(-Pcuda)
  fi
  previous="$arg"
done
built_for_cuda() {
  compgen -G "$ROOT/serving/target/quarkus-app/lib/main/*onnxruntime_gpu*.jar" > /dev/null
}
if [ ! -f "$JAR" ] || [ ! -f "$SERVER" ] || [ -n "$(find "${SOURCES[@]}" -newer "$JAR" -print -quit)" ] \
    || [ -n "$(find "${SOURCES[@]}" -newer "$SERVER" -print -quit)" ] || { [ ${#PROFILE[@]} -gt 0 ] && ! built_for_cuda; }; then
  echo "building the benchmarks and the serving service ${PROFILE[*]}..." >&2
  ./mvnw -B -q "${PROFILE[@]}" -pl benchmarks,serving -am package -DskipTests >&2
fi

mkdir -p bench-results
RESULTS="$ROOT/bench-results/serving-$(date +%Y%m%d-%H%M%S).json"
LOG="${RESULTS%.json}.log"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/loraflow-serving-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx6g -cp "$JAR" \
  dev.loraflow.benchmarks.ServingLoad --server-jar "$SERVER" --dir "$WORK/models" --out "$RESULTS" "$@" \
  > "${RESULTS%.json}.txt" 2> "$LOG" || { tail -n 40 "$LOG" >&2; for server in "$WORK"/models/server-*.log; do
    [ -f "$server" ] && { echo "== $server" >&2; tail -n 20 "$server" >&2; }; done; exit 1; }
for server in "$WORK"/models/server-*.log; do
  { echo "== $(basename "$server")"; cat "$server"; } >> "$LOG"
done
cat "${RESULTS%.json}.txt"
echo "(figures in $RESULTS, progress in $LOG)" >&2
