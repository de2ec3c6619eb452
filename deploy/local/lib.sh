# Shared by up.sh, down.sh and serve.sh (sourced, not run): where the state lives, how the services'
# jars are built, how a process is recognised, asked over HTTP and stopped. Plain bash: the machine
# needs nothing but a JDK, so no curl, python or procps.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${LORAFLOW_HOME:-$ROOT/.loraflow}"
RUN_ENV="$STATE/run.env"
# A stopping process gets this long after SIGTERM before its process group is killed.
STOP_GRACE_SECONDS=20
JAVA_OPTIONS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED)

BROKER_JAR="$ROOT/broker/target/loraflow-broker.jar"
S3SERVER_JAR="$ROOT/s3server/target/loraflow-s3server.jar"
service_jar() { echo "$ROOT/$1/target/quarkus-app/quarkus-run.jar"; }

# Builds the modules $1 (comma-separated, with what they need) when one of the jars that follow is missing
# or older than any source it is made from; with LORAFLOW_NO_BUILD=1 (tests inside a Maven build) takes
# the jars as they are.
ensure_jars() {
  local modules="$1" sources=("$ROOT/pom.xml") module jar
  shift
  if [ "${LORAFLOW_NO_BUILD:-}" = 1 ]; then
    for jar in "$@"; do
      [ -f "$jar" ] || { echo "loraflow: $jar is missing and LORAFLOW_NO_BUILD=1 forbids building it" >&2; return 1; }
    done
    return 0
  fi
  for module in core onnx platform inference service-support ${modules//,/ }; do
    sources+=("$ROOT/$module/pom.xml" "$ROOT/$module/src/main")
  done
  for jar in "$@"; do
    if [ ! -f "$jar" ] || [ -n "$(find "${sources[@]}" -newer "$jar" -print -quit)" ]; then
      echo "loraflow: building $modules (first use or changed sources) ..." >&2
      (cd "$ROOT" && ./mvnw -B -q -pl "$modules" -am package -DskipTests) >&2
      return 0
    fi
  done
}

ensure_service_jars() {
  ensure_jars broker,trainer,merger,serving "$BROKER_JAR" "$(service_jar trainer)" "$(service_jar merger)" \
    "$(service_jar serving)"
}

# Succeeds when pid $1 is a running (not zombie) process whose command line contains $2: a pid
# left in run.env by a crashed run may belong to an unrelated process by now.
is_running() {
  local pid="$1" marker="$2" state command
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    state="$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ "$state" != Z ] || return 1
    command="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
    # A process in the middle of execve (env -> setsid -> java) shows no command line for a moment.
    [ -n "$command" ] || return 0
  else
    command="$(ps -p "$pid" -o command= 2>/dev/null)" || return 1
  fi
  [[ "$command" == *"$marker"* ]]
}

# The HTTP status of GET http://127.0.0.1:$1$2, or nothing when the port does not answer.
http_status() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    local protocol status
    read -r -t 5 protocol status _ <&3 || exit 0
    echo "$status"
  ) 2>/dev/null
}

# Stops process $2 (named $1 in messages, recognised by marker $3): SIGTERM, then after the grace
# period SIGKILL to its whole process group (the broker's Kafka runs in a child JVM). Prints what it did.
stop_process() {
  local name="$1" pid="$2" marker="$3" waited=0
  is_running "$pid" "$marker" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while is_running "$pid" "$marker" && [ "$waited" -lt $((STOP_GRACE_SECONDS * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if is_running "$pid" "$marker"; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    echo "loraflow: killed $name (pid $pid): it did not stop within ${STOP_GRACE_SECONDS}s of SIGTERM" >&2
  else
    echo "loraflow: stopped $name (pid $pid)" >&2
  fi
}

# The marker that recognises each process of run.env.
marker_of() {
  case "$1" in
    broker) echo "loraflow-broker.jar" ;;
    s3server) echo "loraflow-s3server.jar" ;;
    up) echo "deploy/local/up.sh" ;;
    *) echo "$1/target/quarkus-app/quarkus-run.jar" ;;
  esac
}

# The services in start order; they are stopped in reverse. s3server runs only with ./loraflow up --store s3.
SERVICES=(s3server broker trainer merger serving)

# Prints "name:pid" for each process of run.env that still runs (the foreground up included).
running_from_run_env() {
  [ -f "$RUN_ENV" ] || return 0
  (
    # shellcheck disable=SC1090
    . "$RUN_ENV"
    local name pid variable
    for name in up "${SERVICES[@]}"; do
      variable="${name^^}_PID"
      pid="${!variable:-}"
      if is_running "$pid" "$(marker_of "$name")"; then
        echo "$name:$pid"
      fi
    done
  )
}

# Stops every process of run.env that still runs, services in reverse start order, then removes run.env
# and the data producer's Kafka client settings (their password dies with the broker).
stop_from_run_env() {
  [ -f "$RUN_ENV" ] || return 0
  (
    # shellcheck disable=SC1090
    . "$RUN_ENV"
    local index name pid variable
    for ((index = ${#SERVICES[@]} - 1; index >= 0; index--)); do
      name="${SERVICES[$index]}"
      variable="${name^^}_PID"
      pid="${!variable:-}"
      stop_process "$name" "$pid" "$(marker_of "$name")"
    done
  )
  rm -f "$RUN_ENV" "$STATE/kafka-producer.properties" "$STATE/kcat-producer.conf"
}
