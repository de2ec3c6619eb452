#!/bin/sh
# Holds a service back until every topic it is configured with (LORAFLOW_TOPICS_* that are names, not
# numbers) exists. Otherwise a service that reaches the broker before Strimzi's Topic Operator would
# create the topic itself, with one replica, and the KafkaTopic could not fix the replication factor.
# Signs in as the service's KafkaUser (LORAFLOW_KAFKA_USERNAME, the password in the mounted file
# LORAFLOW_KAFKA_PASSWORD_FILE or else LORAFLOW_KAFKA_PASSWORD), whose ACLs let it see its topics; the client
# settings go to kafka-topics.sh on its standard input, never into a file.
topics=$(env | sed -n 's/^LORAFLOW_TOPICS_[A-Z_]*=\(.*[^0-9].*\)$/\1/p')
kafka_password() {
  if [ -n "${LORAFLOW_KAFKA_PASSWORD_FILE:-}" ]; then
    cat "$LORAFLOW_KAFKA_PASSWORD_FILE"
  else
    printf '%s' "$LORAFLOW_KAFKA_PASSWORD"
  fi
}
client_settings() {
  printf 'security.protocol=%s\nsasl.mechanism=%s\n' "${LORAFLOW_KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}" \
    "${LORAFLOW_KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
  printf 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' \
    "$LORAFLOW_KAFKA_USERNAME" "$(kafka_password)"
}
while true; do
  if existing=$(client_settings | /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" \
      --command-config /dev/stdin --list); then
    missing=""
    for topic in $topics; do
      printf '%s\n' "$existing" | grep -qxF "$topic" || missing="$missing $topic"
    done
    if [ -z "$missing" ]; then
      echo "topics present:" $topics
      exit 0
    fi
    echo "waiting for the Topic Operator to create:$missing"
  else
    echo "waiting for the broker at $KAFKA_BOOTSTRAP_SERVERS"
  fi
  sleep 5
done
