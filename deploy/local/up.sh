#!/usr/bin/env bash
# ./loraflow up: the whole platform on one machine — the local Kafka broker, the trainer, the merger and
# serving, each its own process with its own log — started in that order, each awaited on its health
# endpoint. In the foreground until Ctrl-C (or ./loraflow down), or with --detach until ./loraflow down.
# State: $LORAFLOW_HOME (default .loraflow/ at the repository root) holds models/, artifacts/,
# merger-work/, logs/, run.env (pids, URLs, broker, API key, the data producer's Kafka credentials;
# sourceable by scripts) and the data producer's Kafka client settings: kafka-producer.properties (Java
# clients, kafka-console-producer --producer.config) and kcat-producer.conf (kcat -F). The broker
# authenticates every client (SCRAM-SHA-512) and lets each service do only its part (ACLs); every
# password is generated afresh by each up. With --store s3 the artifacts go to a bucket of a local S3 API
# server (S3Proxy, its objects under s3/), which the services reach as they would AWS S3, MinIO or GCS.
set -euo pipefail
: "${JAVA_HOME:?run through ./loraflow up, which finds a JDK >= 25}"
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
usage: ./loraflow up [--detach] [--store local|s3] [--trainer-port P] [--merger-port P] [--serving-port P]

Starts the Kafka broker, the trainer, the merger and serving on 127.0.0.1 and waits in the foreground;
Ctrl-C stops them all. --detach (-d) returns once everything is up; ./loraflow down stops it.
--store s3 keeps the artifacts in bucket loraflow of a local S3 API server (S3Proxy, started first, its
objects under $STATE/s3/) instead of the directory artifacts/ (--store local, the default).
Ports are chosen free unless given. Environment: LORAFLOW_HOME (state directory, default
$ROOT/.loraflow), LORAFLOW_API_KEYS (comma-separated; one is generated when unset),
LORAFLOW_UP_TIMEOUT (seconds each process may take to become healthy, default 180),
LORAFLOW_JAVA_OPTS (extra JVM options for every service), LORAFLOW_SERVING_FOLLOW_MODEL_NAMES (the
announced models serving follows, comma-separated; default * = any, each checked against the merger's
record in the store). Data producers publish jobs and batches with the client settings written to
$STATE/kafka-producer.properties (Java, kafka-console-producer --producer.config) and
$STATE/kcat-producer.conf (kcat -F), user producer; run.env has the same as KAFKA_* variables.
USAGE
}

DETACH=false
STORE_KIND=local
declare -A PORT=([trainer]=0 [merger]=0 [serving]=0)
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--detach) DETACH=true ;;
    --store)
      [ $# -ge 2 ] && [[ "$2" =~ ^(local|s3)$ ]] || { echo "loraflow up: --store needs local or s3" >&2; exit 2; }
      STORE_KIND="$2"
      shift
      ;;
    --trainer-port|--merger-port|--serving-port)
      [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || { echo "loraflow up: $1 needs a port number" >&2; exit 2; }
      name="${1#--}"
      PORT[${name%-port}]="$2"
      shift
      ;;
    -h|--help) usage; exit 0 ;;
    *) echo "loraflow up: unknown argument '$1' (./loraflow up --help lists the options)" >&2; exit 2 ;;
  esac
  shift
done
TIMEOUT="${LORAFLOW_UP_TIMEOUT:-180}"

running="$(running_from_run_env)"
if [ -n "$running" ]; then
  echo "loraflow is already up (pids $(echo "$running" | sed 's/^[a-z]*://' | tr '\n' ' ' | sed 's/ $//')); ./loraflow down first" >&2
  exit 1
fi
# Left by a run that was killed without cleaning up: none of its processes runs any more.
rm -f "$RUN_ENV"

MODELS_ROOT="$STATE/models"
STORE_ROOT="$STATE/artifacts"
MERGER_WORK_DIR="$STATE/merger-work"
LOGS="$STATE/logs"
mkdir -p "$MODELS_ROOT" "$MERGER_WORK_DIR" "$LOGS"
# With --store s3 nothing is written under artifacts/: the services keep what they read in store-cache/.
[ "$STORE_KIND" = s3 ] || mkdir -p "$STORE_ROOT"

LORAFLOW_HOME="$STATE"
UP_PID=$$
STATUS=starting
S3SERVER_PID="" BROKER_PID="" TRAINER_PID="" MERGER_PID="" SERVING_PID=""
# The store the services and the demo open: the directory, or the bucket (its endpoint and key below).
STORE_URI="" AWS_ENDPOINT_URL="" AWS_REGION="" AWS_ACCESS_KEY_ID="" AWS_SECRET_ACCESS_KEY=""
BOOTSTRAP_SERVERS="" TRAINER_URL="" MERGER_URL="" SERVING_URL="" SERVING_GRPC=""
random_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
API_KEYS="${LORAFLOW_API_KEYS:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
API_KEY="${API_KEYS%%,*}"
# One Kafka user per service and one for data producers (broker/PlatformUsers.java has their ACLs);
# admin is the broker's own super user.
declare -A KAFKA_PASSWORD_OF=([admin]="$(random_secret)" [trainer]="$(random_secret)" [merger]="$(random_secret)"
  [serving]="$(random_secret)" [producer]="$(random_secret)")
KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_USERNAME=producer KAFKA_PASSWORD="${KAFKA_PASSWORD_OF[producer]}"
KAFKA_CLIENT_CONFIG="$STATE/kafka-producer.properties" KCAT_CONFIG="$STATE/kcat-producer.conf"
RUN_KEYS=(STATUS LORAFLOW_HOME UP_PID S3SERVER_PID BROKER_PID TRAINER_PID MERGER_PID SERVING_PID BOOTSTRAP_SERVERS
  TRAINER_URL MERGER_URL SERVING_URL SERVING_GRPC API_KEY MODELS_ROOT STORE_ROOT MERGER_WORK_DIR LOGS
  KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_USERNAME KAFKA_PASSWORD KAFKA_CLIENT_CONFIG KCAT_CONFIG
  STORE_URI AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY)

# Writes run.env whole or not at all (readers never see half a file); with "claim", only when no
# other up has written one meanwhile.
write_run_env() {
  local temporary="$RUN_ENV.$$.tmp" key
  # It holds a password: readable by this user only.
  (umask 077 && for key in "${RUN_KEYS[@]}"; do
    printf '%s=%q\n' "$key" "${!key}"
  done > "$temporary")
  if [ "${1:-}" = claim ]; then
    if ln "$temporary" "$RUN_ENV" 2>/dev/null; then
      rm -f "$temporary"
    else
      rm -f "$temporary"
      echo "loraflow is already up (another ./loraflow up is starting); ./loraflow down first" >&2
      exit 1
    fi
  else
    mv -f "$temporary" "$RUN_ENV"
  fi
}

write_run_env claim

# From here on every exit — a failure, Ctrl-C, SIGTERM from ./loraflow down — stops what was started.
shutdown() {
  trap '' INT TERM
  if [ -f "$RUN_ENV" ]; then
    echo "loraflow: stopping ..." >&2
    stop_from_run_env
  fi
}
trap shutdown EXIT
trap 'exit 0' INT TERM

fail() {
  local name="$1" message="$2"
  echo "loraflow up: $name $message; the end of $LOGS/$name.log:" >&2
  tail -n 40 "$LOGS/$name.log" | sed 's/^/  | /' >&2
  exit 1
}

ensure_service_jars
[ "$STORE_KIND" = local ] || ensure_jars s3server "$S3SERVER_JAR"

if command -v setsid > /dev/null; then SETSID=(setsid); else SETSID=(); fi

# Starts java -jar $2 as process $1 with the JVM options (-…, @argfile) and environment assignments that follow (and after
# a "--" the program's arguments), in a session of its own (Ctrl-C reaches only this script, which stops the
# services in order) and with its log; sets STARTED_PID.
start_java() {
  local name="$1" jar="$2" environment=() options=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case "$1" in
      -*|@*) options+=("$1") ;;
      *) environment+=("$1") ;;
    esac
    shift
  done
  [ $# -eq 0 ] || shift
  env "${environment[@]}" "${SETSID[@]}" "$JAVA_HOME/bin/java" "${JAVA_OPTIONS[@]}" "${options[@]}" ${LORAFLOW_JAVA_OPTS:-} \
    -jar "$jar" "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  STARTED_PID=$!
}

# Waits until the log of $1 (pid $2) has a line matching the sed expression $3 and prints what it captures.
await_log_line() {
  local name="$1" pid="$2" expression="$3" deadline=$((SECONDS + TIMEOUT)) found
  while true; do
    found="$(sed -n "$expression" "$LOGS/$name.log" | head -n 1)"
    [ -z "$found" ] || { echo "$found"; return 0; }
    is_running "$pid" "$(marker_of "$name")" || fail "$name" "exited while starting"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "did not start within ${TIMEOUT}s"
    sleep 0.2
  done
}

await_health() {
  local name="$1" pid="$2" port="$3" path="$4" deadline=$((SECONDS + TIMEOUT))
  until [ "$(http_status "$port" "$path")" = 200 ]; do
    is_running "$pid" "$(marker_of "$name")" || fail "$name" "exited while starting"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "did not answer 200 on $path within ${TIMEOUT}s"
    sleep 0.2
  done
}

STORE_ENVIRONMENT=(LORAFLOW_STORE_ROOT="$STORE_ROOT")
if [ "$STORE_KIND" = s3 ]; then
  echo "loraflow: starting the S3 API server ..." >&2
  AWS_ACCESS_KEY_ID="loraflow-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" AWS_SECRET_ACCESS_KEY="$(random_secret)"
  start_java s3server "$S3SERVER_JAR" AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    -- --data "$STATE/s3" --bucket loraflow
  S3SERVER_PID=$STARTED_PID
  write_run_env
  AWS_ENDPOINT_URL="$(await_log_line s3server "$S3SERVER_PID" 's/^endpoint=\(.*\)$/\1/p')"
  AWS_REGION=us-east-1
  STORE_URI="s3://loraflow/artifacts"
  write_run_env
  STORE_ENVIRONMENT+=(LORAFLOW_STORE_URI="$STORE_URI" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_REGION="$AWS_REGION"
    AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY")
fi

echo "loraflow: starting the Kafka broker ..." >&2
start_java broker "$BROKER_JAR" \
  LORAFLOW_KAFKA_PASSWORD_ADMIN="${KAFKA_PASSWORD_OF[admin]}" LORAFLOW_KAFKA_PASSWORD_TRAINER="${KAFKA_PASSWORD_OF[trainer]}" \
  LORAFLOW_KAFKA_PASSWORD_MERGER="${KAFKA_PASSWORD_OF[merger]}" LORAFLOW_KAFKA_PASSWORD_SERVING="${KAFKA_PASSWORD_OF[serving]}" \
  LORAFLOW_KAFKA_PASSWORD_PRODUCER="${KAFKA_PASSWORD_OF[producer]}"
BROKER_PID=$STARTED_PID
write_run_env
BOOTSTRAP_SERVERS="$(await_log_line broker "$BROKER_PID" 's/^bootstrap\.servers=\(.*\)$/\1/p')"
# The data producer's client settings: the same user and password for Java clients and for kcat, whose
# librdkafka names them sasl.username/sasl.password (it reads no SCRAM sasl.jaas.config) and signs in
# with PLAIN, as librdkafka before 2.6.1 cannot do SCRAM with Kafka 4 (broker/LocalKafkaBroker.java).
(umask 077
  cat > "$KAFKA_CLIENT_CONFIG" <<PROPERTIES
# Kafka client settings of the data producer (user producer: writes loraflow.training.jobs and
# loraflow.training.batches), written by ./loraflow up; valid while this broker runs.
# kafka-console-producer --bootstrap-server $BOOTSTRAP_SERVERS --producer.config $KAFKA_CLIENT_CONFIG --topic loraflow.training.batches
bootstrap.servers=$BOOTSTRAP_SERVERS
security.protocol=$KAFKA_SECURITY_PROTOCOL
sasl.mechanism=$KAFKA_SASL_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_USERNAME" password="$KAFKA_PASSWORD";
PROPERTIES
  cat > "$KCAT_CONFIG" <<CONF
# kcat (librdkafka) settings of the data producer, written by ./loraflow up; valid while this broker runs.
# kcat -F $KCAT_CONFIG -P -t loraflow.training.batches -k <job id> batch.json
bootstrap.servers=$BOOTSTRAP_SERVERS
security.protocol=${KAFKA_SECURITY_PROTOCOL,,}
sasl.mechanisms=PLAIN
sasl.username=$KAFKA_USERNAME
sasl.password=$KAFKA_PASSWORD
CONF
)
write_run_env

# A service's heap holds what stays there: a training job's activations, adapter and optimizer state; the
# merger's largest tensor formed whole and the reference model's float32 tensors; requests in flight. A model's
# BF16/F16 weights are mapped from its files, NF4/int8 ones, ONNX Runtime's graphs, arenas and KV caches live
# outside the heap. No service knows its model before a job or a model arrives, so each gets a ceiling, the
# trainer half of memory (activations grow with batch x sequence; NF4/int8 weights are bounded by
# MaxDirectMemorySize, which follows it: half of memory, as the CLI gives them), the merger half too (an int4
# export of an 8 B model holds its 4-bit weights on the heap, and the verification's ONNX Runtime session opens
# only after a full collection has handed that heap back: docs/merger.md), serving a quarter,
# and the collector keeps the committed heap near what is live (heap-gc.args) and hands it back to the machine
# a minute after a job (a periodic collection while idle). Percentages are of the container's limit where one is
# set; a job that does not fit is refused by the service's own check. An -Xmx in LORAFLOW_JAVA_OPTS overrides.
declare -A HEAP_PERCENT_OF=([trainer]=50 [merger]=50 [serving]=25)

# Each service listens on 127.0.0.1 only; with port 0 the system picks a free one and Quarkus logs it.
start_service() {
  local name="$1" health="$2"
  shift 2
  echo "loraflow: starting $name ..." >&2
  start_java "$name" "$(service_jar "$name")" -XX:MaxRAMPercentage="${HEAP_PERCENT_OF[$name]}" \
    "@$ROOT/deploy/local/heap-gc.args" -XX:G1PeriodicGCInterval=60000 \
    KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP_SERVERS" LORAFLOW_KAFKA_USERNAME="$name" \
    LORAFLOW_KAFKA_PASSWORD="${KAFKA_PASSWORD_OF[$name]}" \
    QUARKUS_HTTP_HOST=127.0.0.1 QUARKUS_HTTP_PORT="${PORT[$name]}" \
    LORAFLOW_MODELS_ROOT="$MODELS_ROOT" "${STORE_ENVIRONMENT[@]}" LORAFLOW_STORE_CACHE_DIR="$STATE/store-cache/$name" \
    LORAFLOW_API_KEYS="$API_KEYS" "$@"
  local pid=$STARTED_PID variable="${name^^}_PID"
  printf -v "$variable" '%s' "$pid"
  write_run_env
  local port
  port="$(await_log_line "$name" "$pid" 's|.*Listening on: http://[^ ]*:\([0-9][0-9]*\).*|\1|p')"
  await_health "$name" "$pid" "$port" "$health"
  printf -v "${name^^}_URL" '%s' "http://127.0.0.1:$port"
  write_run_env
}

start_service trainer /q/health/ready
start_service merger /q/health/ready LORAFLOW_MERGER_WORK_DIR="$MERGER_WORK_DIR"
# Serving is ready only once it serves a model; it loads each merged model the merger announces.
# Its KServe v2 gRPC server too listens on 127.0.0.1 at a free port, which its log names. Its admin API
# reads models and adapters from anywhere under the state directory (the demo's exports sit beside the store).
start_service serving /q/health/live LORAFLOW_SERVING_FOLLOW_MODELS=true \
  LORAFLOW_SERVING_FOLLOW_MODEL_NAMES="${LORAFLOW_SERVING_FOLLOW_MODEL_NAMES:-*}" \
  QUARKUS_GRPC_SERVER_HOST=127.0.0.1 QUARKUS_GRPC_SERVER_PORT=0 \
  LORAFLOW_SERVING_ADMIN_ROOTS="${LORAFLOW_SERVING_ADMIN_ROOTS:-$STATE}"
SERVING_GRPC="$(await_log_line serving "$SERVING_PID" 's|.*Started gRPC server on \([^ ]*\) .*|\1|p')"

STATUS=up
write_run_env

relative() { echo "${1#"$PWD"/}"; }
row() { printf '  %-10s %-30s %s\n' "$@"; }
echo "loraflow is up:"
row broker "$BOOTSTRAP_SERVERS" "$(relative "$LOGS")/broker.log   (SASL_PLAINTEXT, SCRAM-SHA-512)"
row producer "$(relative "$KAFKA_CLIENT_CONFIG")" "(Kafka client settings of user producer; kcat: $(relative "$KCAT_CONFIG"))"
row trainer "$TRAINER_URL" "$(relative "$LOGS")/trainer.log"
row merger "$MERGER_URL" "$(relative "$LOGS")/merger.log"
row serving "$SERVING_URL" "$(relative "$LOGS")/serving.log   (follows the merged models)"
row "  gRPC" "$SERVING_GRPC" "(KServe v2: inference.GRPCInferenceService, plaintext)"
row "API key" "$API_KEY" "(Authorization: Bearer <key>)"
row models "$(relative "$MODELS_ROOT")" "(base models: Hugging Face directories, named as jobs name them)"
if [ "$STORE_KIND" = s3 ]; then
  row s3 "$AWS_ENDPOINT_URL" "$(relative "$LOGS")/s3server.log   (S3Proxy; objects in $(relative "$STATE/s3"))"
  row artifacts "$STORE_URI" "(adapters, merged models, ONNX files; read caches in $(relative "$STATE/store-cache"))"
else
  row artifacts "$(relative "$STORE_ROOT")" "(adapters, merged models, ONNX files)"
fi
row run.env "$(relative "$RUN_ENV")" "(all of the above for scripts)"

if [ "$DETACH" = true ]; then
  trap - EXIT INT TERM
  echo "loraflow: running in the background; ./loraflow down stops it" >&2
  exit 0
fi

echo "loraflow: Ctrl-C (or ./loraflow down) stops everything" >&2
while true; do
  # ./loraflow down asks this script to stop (SIGTERM); if run.env went another way, so did the services.
  [ -f "$RUN_ENV" ] || { trap - EXIT; exit 0; }
  for name in "${SERVICES[@]}"; do
    variable="${name^^}_PID"
    # A service this run did not start (s3server without --store s3) has no pid to watch.
    [ -z "${!variable}" ] || is_running "${!variable}" "$(marker_of "$name")" || fail "$name" "exited unexpectedly"
  done
  sleep 1
done
