#!/usr/bin/env bash
# Sourced by the bench/ scripts: their --help and the checks of their arguments, which come before anything
# is built or run. Wrong arguments exit with code 2 and one line, as the CLI's do.

# Prints the usage line(s) given, then the comment block at the top of script $1 (what it does, its settings).
print_usage() {
  local script="$1"
  shift
  printf '%s\n' "$@" ""
  sed -n '2,/^set -euo/p' "$script" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# True when one of the arguments asks for help.
asks_for_help() {
  local argument
  for argument in "$@"; do
    case "$argument" in -h|--help) return 0 ;; esac
  done
  return 1
}

# Fails with exit code 2: one line naming what is wrong ($1: the script's name, $2: the message).
usage_error() {
  echo "$1: $2 (--help lists the options)" >&2
  exit 2
}

# The arguments of benchmark main $1 (dev.loraflow.benchmarks.$1) before any build: prints its usage and exits
# on --help, exits with code 2 and one line on a wrong argument, returns when they are fine. The mains'
# command lines live in one source file that needs only the JDK: java runs it as it is, or its class when
# a build has compiled it since it last changed (no compilation: about a seventh of the time).
check_benchmark_arguments() {
  local main="$1" status=0 source="$ROOT/benchmarks/src/main/java/dev/loraflow/benchmarks/BenchmarkCommandLine.java"
  local classes="$ROOT/benchmarks/target/classes" program
  shift
  if [ "$classes/dev/loraflow/benchmarks/BenchmarkCommandLine.class" -nt "$source" ]; then
    program=(-cp "$classes" dev.loraflow.benchmarks.BenchmarkCommandLine)
  else
    program=("$source")
  fi
  "$JAVA_HOME/bin/java" "${program[@]}" "$main" "$@" || status=$?
  [ "$status" -eq 0 ] || exit "$status"
  if asks_for_help "$@"; then exit 0; fi
}
