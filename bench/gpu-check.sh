#!/usr/bin/env bash
# The CUDA path checked in minutes on a machine with an NVIDIA GPU (./loraflow gpu-check):
#   1. a GPU must be visible (nvidia-smi), else it stops here with one line saying so (exit 1);
#   2. builds serving, the CLI and the benchmarks with -Pcuda (onnxruntime_gpu, from Maven Central on first use);
#   3. runs the inference engine's tests (EngineTest: answers token for token against core's Java generator,
#      batching, chunked prefill, the KV budget, 64 adapters in one batch) with the CUDA execution provider;
#      its test runsOnTheRequestedProvider fails if ONNX Runtime fell back to the CPU (no CUDA provider/libraries);
#   4. runs the serving benchmark on the GPU, short (bench/run-serving.sh --device cuda; a server that does not
#      run its model on CUDA is an error there too).
# Extra arguments go to the benchmark (e.g. --tokens 256 --waves 2). The jars it builds replace the CPU ones in
# */target (onnxruntime_gpu also runs on the CPU); ./loraflow test rebuilds them without -Pcuda.
# Environment: JAVA_HOME (a JDK >= 25; ./loraflow finds one); PATH must hold nvidia-smi.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow gpu-check [BENCH-SERVING-OPTIONS]   (./loraflow bench-serving --help lists them)"
  exit 0
fi
cd "$ROOT"
: "${JAVA_HOME:?run through ./loraflow gpu-check, which finds a JDK >= 25}"
# The benchmark's arguments are checked before the GPU is looked for and before anything is built.
check_benchmark_arguments ServingLoad --device cuda --tokens 128 --rounds 2 --waves 1 "$@"

fail() {
  echo "gpu-check: $*" >&2
  exit 1
}

command -v nvidia-smi > /dev/null || fail "no nvidia-smi on PATH: no NVIDIA driver here, so no GPU to check"
GPUS="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)" \
  || fail "nvidia-smi sees no GPU: $(nvidia-smi 2>&1 | head -n 1)"
[ -n "$GPUS" ] || fail "nvidia-smi lists no GPU"
echo "gpu-check: $GPUS" >&2

START=$SECONDS
echo "gpu-check: building with -Pcuda (onnxruntime_gpu)..." >&2
./mvnw -B -q -Pcuda -pl inference,serving,cli,benchmarks -am package -DskipTests >&2

echo "gpu-check: the engine's tests on the CUDA execution provider..." >&2
./mvnw -B -q -Pcuda -pl inference -am test -Dloraflow.test.provider=cuda -Dtest='EngineTest' \
  -Dsurefire.failIfNoSpecifiedTests=false >&2 || fail "the engine's tests failed on CUDA (see */target/surefire-reports)"

echo "gpu-check: the serving benchmark on the GPU..." >&2
# The jars were just built with -Pcuda: run-serving.sh finds them up to date and uses them.
"$ROOT/bench/run-serving.sh" --device cuda --tokens 128 --rounds 2 --waves 1 "$@"
echo "gpu-check: passed in $((SECONDS - START)) s" >&2
