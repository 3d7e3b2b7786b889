#!/usr/bin/env bash
# The real-data demo: builds rivulet and rivulet-demo, starts `rivulet serve` on ./rivulet-data,
# and runs every step of docs/demo.md against it (a year of New York flights, two consumer
# groups, a consumer killed with SIGKILL and restarted, replays, a dead-letter topic), ending
# in a summary of figures and checks. Exits non-zero if any check fails.
#
#   scripts/demo.sh                  # the full data: 336,776 flights
#   scripts/demo.sh --limit 20000    # an even slice of about 20,000 flights
#
# Other arguments go to `rivulet-demo run` (see `rivulet-demo run --help`).
# Environment: DEMO_PROFILE=release builds optimised binaries (slower to build, faster to run;
# the default is the dev profile, whose dependencies are optimised anyway). DEMO_PORT picks the
# port (default 7070; when it is busy a free port is used instead).
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${DEMO_PROFILE:-dev}"
port="${DEMO_PORT:-7070}"
data_dir="rivulet-data"
work_dir="target/demo"
target_dir="${CARGO_TARGET_DIR:-target}"
case "$profile" in
  dev) bin_dir="$target_dir/debug" ;;
  release) bin_dir="$target_dir/release" ;;
  *) echo "demo.sh: DEMO_PROFILE must be dev or release, not '$profile'" >&2; exit 2 ;;
esac

echo "== building rivulet and rivulet-demo ($profile profile)"
build_started=$SECONDS
cargo build --locked --profile "$profile" -p rivulet-cli -p rivulet-demo
echo "built in $((SECONDS - build_started)) s"

mkdir -p "$work_dir"
pid_file="$work_dir/server.pid"
if [[ -f "$pid_file" ]]; then
  old_pid="$(cat "$pid_file")"
  if [[ -n "$old_pid" ]] && kill -0 "$old_pid" 2>/dev/null \
      && grep -q rivulet "/proc/$old_pid/cmdline" 2>/dev/null; then
    echo "demo.sh: a server from an earlier demo (pid $old_pid) is still running on" \
      "$data_dir; stop it first with: kill $old_pid" >&2
    exit 2
  fi
  rm -f "$pid_file"
fi

listen="127.0.0.1:$port"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is busy; the server will listen on a free port instead"
  listen="127.0.0.1:0"
fi

server_out="$work_dir/server.out"
server_log="$work_dir/server.log"
echo "== starting rivulet serve: data in ./$data_dir, log in ./$server_log"
"$bin_dir/rivulet" serve --listen "$listen" --data-dir "$data_dir" \
  >"$server_out" 2>"$server_log" </dev/null &
server_pid=$!
echo "$server_pid" >"$pid_file"

stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 200); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pid_file"
}
trap stop_server EXIT

addr=""
for _ in $(seq 1 300); do
  addr="$(sed -n 's/^listening on //p' "$server_out" 2>/dev/null | head -n 1)"
  [[ -n "$addr" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo.sh: rivulet serve exited before listening; its log ($server_log):" >&2
    tail -n 20 "$server_log" >&2
    exit 2
  fi
  sleep 0.1
done
if [[ -z "$addr" ]]; then
  echo "demo.sh: rivulet serve did not start listening within 30 s; see $server_log" >&2
  exit 2
fi
echo "server pid $server_pid listening on $addr"

status=0
"$bin_dir/rivulet-demo" run --addr "$addr" --data data --work-dir "$work_dir" \
  --server-data-dir "$data_dir" "$@" || status=$?
echo "== stopping the server (data kept in ./$data_dir; the next run re-creates the demo topics)"
exit "$status"
