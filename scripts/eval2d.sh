#!/usr/bin/env bash
# The 2-D release evaluation (docs/models.md, "Rebuilding the bundled models"): the alarm
# threshold for Pfa 0.05 picked on calib + calib2 (3,000 scans) and stored in MODEL, then
# reports on test2 (2,000) and test (400) for `concealscan compare`.
#   scripts/eval2d.sh MODEL.onnx OUT [THREADS]    -> OUT/calib12, OUT/test2, OUT/test
# SKIP_TEST=1 leaves out the 400-scan test set.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/eval2d.sh MODEL.onnx OUT [THREADS]" >&2; exit 64; }
model=$1 out=$2 threads=${3:-1}
cs=${CONCEALSCAN:-concealscan}
"$cs" evaluate --model "$model" --threads "$threads" --target-pfa 0.05 --report "$out/calib12" \
  --data data/sim/calib/annotations.json data/sim/calib2/annotations.json
sets=(test2)
[ "${SKIP_TEST:-0}" = 1 ] || sets+=(test)
for set in "${sets[@]}"; do
  "$cs" evaluate --model "$model" --threads "$threads" --report "$out/$set" \
    --data "data/sim/$set/annotations.json"
done
