#!/bin/sh
# make kafka-demo: start the standalone kfake broker, produce a few events
# through the real Kafka sink, read them back with kcat.
#
#   tests/kafka-demo.sh [N_EVENTS] [native|ocsf]
set -eu

cd "$(dirname "$0")/.."
n=${1:-5}
format=${2:-native}
topic=lineaged-events

command -v kcat >/dev/null || { echo "kafka-demo: kcat is required (apt-get install kcat)" >&2; exit 1; }

work=$(mktemp -d)
broker_pid=
cleanup() {
	if [ -n "$broker_pid" ]; then
		kill "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/kafkabroker" ./tests/kafkabroker
go build -o "$work/demoproducer" ./tests/kafka/demoproducer

"$work/kafkabroker" -port 0 -topic "$topic" -partitions 4 >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!

addr=
i=0
while [ $i -lt 100 ]; do
	addr=$(sed -n 's/^ready //p' "$work/broker.out")
	[ -n "$addr" ] && break
	if ! kill -0 "$broker_pid" 2>/dev/null; then
		echo "kafka-demo: broker exited:" >&2
		cat "$work/broker.err" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
[ -n "$addr" ] || { echo "kafka-demo: broker not ready after 10 s" >&2; exit 1; }
echo "kafka-demo: broker on $addr, topic $topic"

"$work/demoproducer" -brokers "$addr" -topic "$topic" -n "$n" -format "$format" -spool "$work/spool"
echo "kafka-demo: produced $n $format events; reading them back with kcat:"

kcat -C -b "$addr" -t "$topic" -o beginning -e -q \
	-f 'partition %p offset %o key %k headers %h\n%s\n' | tee "$work/consumed"

got=$(grep -c '^partition ' "$work/consumed" || true)
if [ "$got" -ne "$n" ]; then
	echo "kafka-demo: kcat read $got events, want $n" >&2
	exit 1
fi
echo "kafka-demo: kcat read all $n events"
