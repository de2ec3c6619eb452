#!/bin/sh
# Holds a service back until every topic it is configured with (LORAFLOW_TOPICS_* that are names, not
# numbers) exists. Otherwise a service that reaches the broker before Strimzi's Topic Operator would
# create the topic itself, with one replica, and the KafkaTopic could not fix the replication factor.
topics=$(env | sed -n 's/^LORAFLOW_TOPICS_[A-Z_]*=\(.*[^0-9].*\)$/\1/p')
while true; do
  if existing=$(/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list); then
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
