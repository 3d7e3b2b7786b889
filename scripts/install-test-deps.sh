#!/usr/bin/env bash
# Installs the Python packages the cross-checks need: the kafka-python cross-check
# (crates/format/tests/kafka_python.rs) needs kafka-python and the codec modules it imports
# (python-snappy, which pulls in cramjam; lz4; zstandard); the independent gRPC client
# (scripts/grpc_client_check.py, run by crates/cli/tests/it) needs grpcio and grpcio-tools.
# Safe to run repeatedly: pip leaves satisfied pins alone.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "kafka-python==3.0.12" \
    "python-snappy==0.7.3" \
    "lz4==4.4.5" \
    "zstandard==0.25.0" \
    "grpcio==1.85.1" \
    "grpcio-tools==1.85.1"

"$PYTHON" "$(dirname "$0")/kafka_python_batches.py" deps
