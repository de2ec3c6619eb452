#!/usr/bin/env bash
# The trainer's figures side by side in one run: a job through a real Kafka broker and the packaged
# trainer service against core's Trainer on the same examples (as ./loraflow train runs them), and the
# time to checkpoint a GPT-2-small r = 8 adapter. Prints the PIPELINE and CHECKPOINT lines.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${JAVA_HOME:?run through ./loraflow bench-trainer, which finds a JDK >= 25}"
mkdir -p bench-results
LOG="bench-results/trainer-$(date +%Y%m%d-%H%M%S).log"
./mvnw -B -pl benchmarks -am verify -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false \
  -Dit.test=PipelineBenchmark -Dfailsafe.failIfNoSpecifiedTests=false -Dfailsafe.includes='**/PipelineBenchmark.java' \
  > "$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; exit 1; }
grep -A5 -E "^PIPELINE|^CHECKPOINT" "$LOG" | grep -E "PIPELINE|direct|through|overhead|steady|CHECKPOINT" | tee "${LOG%.log}.txt"
echo "(full log in $LOG)" >&2
