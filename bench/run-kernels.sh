#!/usr/bin/env bash
# Core kernel benchmarks side by side with OpenBLAS in one run: OpenBLAS (numpy) before, JMH, OpenBLAS
# after; the table compares loraflow with the faster OpenBLAS figure. Extra arguments go to JMH, whose options
# all start with one dash (e.g. -f 1 -wi 2 -i 3 -p size=512; java -jar benchmarks/target/benchmarks.jar -h lists
# them); a positional argument is a further benchmark regexp. Builds benchmarks/target/benchmarks.jar first when
# it is missing or older than its sources. Results in bench-results/<time>/.
# Needs python3 with numpy (Debian: apt-get install python3-numpy libopenblas0-pthread).
# Environment: JAVA_HOME (a JDK >= 25; ./loraflow finds one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow bench [JMH-OPTIONS]"
  exit 0
fi
for argument in "$@"; do
  case "$argument" in
    --*) usage_error run-kernels "unknown option '$argument'; JMH's options start with one dash" ;;
  esac
done
cd "$ROOT"
: "${JAVA_HOME:?run through ./loraflow bench, which finds a JDK >= 25}"

PYTHON=""
for candidate in /usr/bin/python3 python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then PYTHON="$candidate"; break; fi
done
[ -n "$PYTHON" ] || { echo "run-kernels: needs python3 with numpy for the OpenBLAS reference (apt-get install python3-numpy libopenblas0-pthread)" >&2; exit 1; }

JAR="$ROOT/benchmarks/target/benchmarks.jar"
if [ ! -f "$JAR" ] || [ -n "$(find "$ROOT/core/src" "$ROOT/benchmarks/src" -newer "$JAR" -print -quit)" ]; then
  ./mvnw -B -q -pl benchmarks -am package -DskipTests
fi

OUT="$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
echo "OpenBLAS reference (before)..." >&2
"$PYTHON" bench/openblas_reference.py > "$OUT/openblas-before.json"
echo "JMH..." >&2
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -jar "$JAR" 'GemmBenchmark|LoRALinearBenchmark' \
  -rf json -rff "$OUT/jmh.json" "$@" > "$OUT/jmh.log" 2>&1 || { tail -n 30 "$OUT/jmh.log" >&2; exit 1; }
echo "OpenBLAS reference (after)..." >&2
"$PYTHON" bench/openblas_reference.py > "$OUT/openblas-after.json"
"$PYTHON" bench/kernels_report.py "$OUT/jmh.json" "$OUT/openblas-before.json" "$OUT/openblas-after.json" | tee "$OUT/report.txt"
echo "(raw results in $OUT)" >&2
