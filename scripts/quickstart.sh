#!/usr/bin/env bash
# README command 1: install dependencies, build pinferc, and run the
# walkthrough on a small generated model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh pinferc pinfer-genmodel pinfer-opt pinfer_runtime
bash examples/walkthrough.sh
