#!/usr/bin/env bash
# Generates the Python modules of pns.v1 from ../../proto into ./gen (messages, stubs, type
# stubs). grpcio-tools ships protoc and google/protobuf/*.proto, so nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen && mkdir -p gen
python -m grpc_tools.protoc -I ../../proto \
  --python_out=gen --grpc_python_out=gen --pyi_out=gen \
  ../../proto/pns/v1/*.proto
