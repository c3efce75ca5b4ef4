#!/usr/bin/env bash
# Start dockyardd (unless one already serves the socket), import the embedded busybox image,
# run a container that prints "hello", and stop the daemon we started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SOCK=${DOCKYARD_SOCK:-/run/dockyard.sock}
export DOCKYARD_HOST=unix://$SOCK
LOG=${DOCKYARD_DEMO_LOG:-/tmp/dockyardd-demo.log}
started=""

cleanup() {
  if [ -n "$started" ]; then
    kill -TERM "$started" 2>/dev/null || true
    wait "$started" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if ! $BIN/dockyard version >/dev/null 2>&1; then
  $BIN/dockyardd -H "unix://$SOCK" >"$LOG" 2>&1 &
  started=$!
  for _ in $(seq 100); do
    $BIN/dockyard version >/dev/null 2>&1 && break
    if ! kill -0 "$started" 2>/dev/null; then echo "dockyardd failed to start:"; cat "$LOG"; exit 1; fi
    sleep 0.1
  done
fi

if ! $BIN/dockyard inspect --type image busybox:latest >/dev/null 2>&1; then
  tar=$(mktemp /tmp/busybox-rootfs.XXXXXX.tar)
  $BIN/python -m dockyard.core.busybox "$tar"
  $BIN/dockyard import --change 'CMD ["sh"]' "$tar" busybox:latest >/dev/null
  rm -f "$tar"
fi

$BIN/dockyard run --rm busybox echo hello
