#!/usr/bin/env bash
# The standard benchmark runs of docs/benchmarks.md, over gRPC on 127.0.0.1, each against a fresh
# `rivulet serve` (release build) on a temporary data directory:
#
#   scripts/bench.sh produce    # 100 B and 1 KiB; 1 and 8 producers; 1 and 8 partitions; written
#                               # (on sync-interval and os-decides topics) and durable
#   scripts/bench.sh consume    # read a pre-filled topic from the page cache, 100 B and 1 KiB
#   scripts/bench.sh latency    # end to end at a fixed rate (half the produce peak), written and durable
#   scripts/bench.sh all        # the three, in that order
#
# Every run is bounded by a record count and a duration. Results are appended as JSON lines to
# target/bench-results/<UTC date>.jsonl, and each run's Markdown row is printed. Run nothing else
# heavy meanwhile (no builds): two cores are shared by the client and the server.
# Environment: RECORDS_1K, RECORDS_100 (records per produce run), RATE_1K, RATE_1K_DURABLE,
# RATE_100 (records/s for the latency runs), EXTRA (more rivulet-bench flags for every run).
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
case "$what" in
  produce|consume|latency|all) ;;
  *) echo "usage: scripts/bench.sh [produce|consume|latency|all]" >&2; exit 2 ;;
esac

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p rivulet-cli -p rivulet-bench
bench="$target_dir/release/rivulet-bench"
server="$target_dir/release/rivulet"
results="target/bench-results"
mkdir -p "$results"
out="$results/$(date -u +%Y-%m-%d).jsonl"
records_1k="${RECORDS_1K:-1000000}"
records_100="${RECORDS_100:-5000000}"
read -r -a extra <<<"${EXTRA:-}"

run() {
  echo "== rivulet-bench $*" >&2
  timeout 300 "$bench" --spawn-server "$server" --json-out "$out" --progress 0 "${extra[@]}" "$@" \
    | tail -n 1
}

records_for() { [[ "$1" == 100 ]] && echo "$records_100" || echo "$records_1k"; }

if [[ "$what" == produce || "$what" == all ]]; then
  # `written` twice: on the default sync-interval topic (synced every second, write-back started
  # as data arrives) and on an os-decides topic (the page cache absorbs the run).
  for size in 1024 100; do
    for mode in "written sync-interval" "written os-decides" "durable sync-interval"; do
      read -r durability policy <<<"$mode"
      for producers in 1 8; do
        for partitions in 1 8; do
          run --workload produce --produce-client raw --record-size "$size" \
            --records "$(records_for "$size")" --duration 30 --durability "$durability" \
            --topic-policy "$policy" --producers "$producers" --partitions "$partitions"
        done
      done
    done
  done
  # What an application sees through the client library's batching Producer.
  run --workload produce --produce-client producer --record-size 1024 --records "$records_1k" \
    --duration 30 --durability written
fi

if [[ "$what" == consume || "$what" == all ]]; then
  for size in 1024 100; do
    run --workload consume --record-size "$size" --records "$(records_for "$size")" \
      --duration 30 --partitions 1 --consumers 1
    run --workload consume --record-size "$size" --records "$(records_for "$size")" \
      --duration 30 --partitions 8 --consumers 2
  done
fi

if [[ "$what" == latency || "$what" == all ]]; then
  # Raw batches of 128 KiB at about half the single-producer peak of each mode; then what an
  # application sees through the client library's Producer (1 ms linger).
  latency() { # size rate durability [client]
    run --workload end-to-end --produce-client "${4:-raw}" --record-size "$1" --rate "$2" \
      --records 20000000 --duration 10 --durability "$3" --batch-bytes 131072 --linger-ms 1
  }
  latency 1024 "${RATE_1K:-250000}" written
  latency 1024 "${RATE_1K_DURABLE:-100000}" durable
  latency 100 "${RATE_100:-1000000}" written
  latency 1024 100000 written producer
fi

echo "results appended to $out" >&2
