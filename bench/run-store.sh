#!/usr/bin/env bash
# Artifact store throughput (issue 17): a 1 GB artifact copied with cp -r, stored in and opened from the local
# store, and uploaded to and downloaded from an S3 bucket on a local S3Proxy (multipart, ranged GETs, the read
# cache); then serving's cold load of an exported model from the local store and from S3. Medians of rounds in
# which the variants alternate, so ratios come from the same machine load. One JSON line on stdout.
# Arguments go to dev.loraflow.benchmarks.StoreThroughput: --size-mb (1024) --rounds (3) --model-layers (8)
# --dir (/tmp/loraflow-store-bench; deleted and made again). Disk: about 3 x the size.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${JAVA_HOME:?run through ./loraflow bench-store, which finds a JDK >= 25}"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
check_benchmark_arguments StoreThroughput "$@"
cd "$ROOT"
./mvnw -B -q -pl benchmarks,s3server -am package -DskipTests >&2
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  ${LORAFLOW_JAVA_OPTS:-} -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.StoreThroughput "$@"
