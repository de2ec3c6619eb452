#!/usr/bin/env bash
# ./loraflow demo: the platform's main job end to end on this machine. Starts everything with
# ./loraflow up --detach in a fresh state directory (.loraflow/demo/<time>/), runs the demo driver
# (demo/target/loraflow-demo.jar, dev.loraflow.demo.Demo) against it, writes the HTML report,
# and stops everything again with ./loraflow down, whatever happened, unless --keep-running.
set -euo pipefail
: "${JAVA_HOME:?run through ./loraflow demo, which finds a JDK >= 25}"
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
usage: ./loraflow demo [--base DIR] [--steps N] [--store local|s3] [--keep-running] [--report FILE]

Makes a small random GPT-2 (or takes the Hugging Face directory --base), serves it and asks it 100
held-out words of a letter-substitution cipher, trains a LoRA adapter on 2000 others streamed through
Kafka (--steps, default 300, 16 words each), waits for checkpoint -> merge -> ONNX -> verified -> served,
asks again, and checks the served answers against the merged model run in Java. A few minutes on 2 cores.
--store s3 runs the platform with its artifacts in a local S3 API server's bucket (./loraflow up --store s3).
--keep-running leaves the platform up afterwards (./loraflow down stops it); --report FILE is where
the HTML report goes (default: the run's state directory). Exits non-zero naming the stage that failed.
Environment: LORAFLOW_DEMO_HOME (the run's state directory, default $ROOT/.loraflow/demo/<time>),
LORAFLOW_JAVA_OPTS (extra JVM options for the services and the demo driver), JAVA_HOME (a JDK >= 25).
USAGE
}

DRIVER_ARGS=()
KEEP_RUNNING=false
UP_ARGS=()
REPORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base|--steps)
      [ $# -ge 2 ] || { echo "loraflow demo: $1 needs a value" >&2; exit 2; }
      DRIVER_ARGS+=("$1" "$2")
      shift
      ;;
    --report)
      [ $# -ge 2 ] || { echo "loraflow demo: --report needs a file" >&2; exit 2; }
      REPORT="$2"
      shift
      ;;
    --store)
      [ $# -ge 2 ] || { echo "loraflow demo: --store needs local or s3" >&2; exit 2; }
      UP_ARGS+=("$1" "$2")
      shift
      ;;
    --keep-running) KEEP_RUNNING=true ;;
    -h|--help) usage; exit 0 ;;
    *) echo "loraflow demo: unknown argument '$1' (./loraflow demo --help lists the options)" >&2; exit 2 ;;
  esac
  shift
done

DEMO_JAR="$ROOT/demo/target/loraflow-demo.jar"
# Builds the demo driver when it is missing or older than any source it is made from.
ensure_demo_jar() {
  local sources=("$ROOT/pom.xml") module
  for module in core onnx platform demo; do
    sources+=("$ROOT/$module/pom.xml" "$ROOT/$module/src/main")
  done
  if [ -f "$DEMO_JAR" ] && [ -z "$(find "${sources[@]}" -newer "$DEMO_JAR" -print -quit)" ]; then
    return 0
  fi
  echo "loraflow: building the demo driver (first use or changed sources) ..." >&2
  (cd "$ROOT" && ./mvnw -B -q -pl demo -am package -DskipTests) >&2
}

ensure_demo_jar
ensure_service_jars

# A state directory of its own: the demo's topics, models and artifacts start empty, and an earlier
# ./loraflow up elsewhere is left alone.
export LORAFLOW_HOME="${LORAFLOW_DEMO_HOME:-$ROOT/.loraflow/demo/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LORAFLOW_HOME"
[ -n "$REPORT" ] || REPORT="$LORAFLOW_HOME/demo-report.html"
DEMO_STATE="$LORAFLOW_HOME"

finish() {
  if [ "$KEEP_RUNNING" = true ]; then
    echo "loraflow: still running (--keep-running): LORAFLOW_HOME=$DEMO_STATE ./loraflow down stops it" >&2
  else
    "$ROOT/deploy/local/down.sh" >&2 || true
  fi
}
trap finish EXIT

echo "loraflow demo: starting the platform in $DEMO_STATE ..." >&2
started=$SECONDS
if ! "$ROOT/deploy/local/up.sh" --detach "${UP_ARGS[@]}"; then
  echo "loraflow demo: stage 'platform up' failed; see $DEMO_STATE/logs/" >&2
  exit 1
fi

status=0
# The driver opens the merged model from the store the services use: with --store s3, the bucket, its
# endpoint and key from run.env.
(
  # shellcheck disable=SC1091
  . "$DEMO_STATE/run.env"
  if [ -n "$STORE_URI" ]; then
    export LORAFLOW_STORE_URI="$STORE_URI" LORAFLOW_STORE_CACHE_DIR="$DEMO_STATE/store-cache/demo" AWS_ENDPOINT_URL \
      AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  fi
  exec "$JAVA_HOME/bin/java" "${JAVA_OPTIONS[@]}" -Xss4m ${LORAFLOW_JAVA_OPTS:-} -jar "$DEMO_JAR" \
    --env "$DEMO_STATE/run.env" --report "$REPORT" --platform-up-seconds "$((SECONDS - started))" \
    "${DRIVER_ARGS[@]}"
) || status=$?
echo "loraflow demo: the report is $REPORT (open it in a browser); logs in $DEMO_STATE/logs/" >&2
exit "$status"
