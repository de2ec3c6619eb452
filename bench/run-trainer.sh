#!/usr/bin/env bash
# The trainer's figures side by side in one run: a job through a real Kafka broker and the packaged
# trainer service against core's Trainer on the same examples (as ./loraflow train runs them), and the
# time to checkpoint a GPT-2-small r = 8 adapter. Prints the PIPELINE and CHECKPOINT lines; the whole Maven log
# goes to bench-results/trainer-<time>.log. It takes no arguments; it builds what it needs (./mvnw verify of the
# benchmarks module, PipelineBenchmark only), minutes.
# Environment: JAVA_HOME (a JDK >= 25; ./loraflow finds one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
if asks_for_help "$@"; then
  print_usage "${BASH_SOURCE[0]}" "usage: ./loraflow bench-trainer"
  exit 0
fi
[ $# -eq 0 ] || usage_error run-trainer "unknown argument '$1'; it takes none"
cd "$ROOT"
: "${JAVA_HOME:?run through ./loraflow bench-trainer, which finds a JDK >= 25}"
mkdir -p bench-results
LOG="bench-results/trainer-$(date +%Y%m%d-%H%M%S).log"
./mvnw -B -pl benchmarks -am verify -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false \
  -Dit.test=PipelineBenchmark -Dfailsafe.failIfNoSpecifiedTests=false -Dfailsafe.includes='**/PipelineBenchmark.java' \
  > "$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; exit 1; }
grep -A5 -E "^PIPELINE|^CHECKPOINT" "$LOG" | grep -E "PIPELINE|direct|through|overhead|steady|CHECKPOINT" | tee "${LOG%.log}.txt"
echo "(full log in $LOG)" >&2
