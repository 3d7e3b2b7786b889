#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration, property, crash and doc tests, plus the
# cross-checks against independent implementations (which need the Python packages installed
# first). Works on a fresh machine with Rust and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --workspace --locked
