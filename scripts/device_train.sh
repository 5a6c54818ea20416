#!/usr/bin/env bash
# Train a recipe on a lent GPU machine (the workplace's device tool) as one prepared command.
# Here, first:  bash scripts/device_wheels.sh   (the wheels that machine lacks, into .whl/)
# then call the device tool's run with, e.g. (docs/training.md, "On a lent GPU"):
#   command: bash scripts/device_train.sh configs/train/dual_more2.yaml 24 7
#   carry:   [".whl", "runs/dual_more/last.pt"]   (the recipe's init_from), timeout_s: 600
# Arguments: RECIPE EPOCHS MINUTES. There it installs the wheels, makes the recipe's data sets
# with every core (scripts/make_datasets.py; nothing of data/ travels), trains with the GPU
# settings below for EPOCHS epochs but at most MINUTES minutes (then killed: last.pt holds the
# last finished epoch, and --resume continues it), exports last.pt to ONNX and leaves the ONNX,
# last.pt, metrics.csv and the log in $OUT, which the tool brings back.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: bash scripts/device_train.sh RECIPE EPOCHS MINUTES" >&2; exit 64; }
recipe=$1 epochs=$2 minutes=$3
py=${PYTHON:-python3}
out=${OUT:-runs/device_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if ! $py -c "import albumentations, pycocotools, pydicom" 2>/dev/null; then
  [ -d .whl ] || { echo "albumentations, pycocotools or pydicom missing, and no .whl" >&2; exit 1; }
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
cores=$(nproc)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: CPU run"
start=$(date +%s)
$py scripts/make_datasets.py --recipe "$recipe" --workers "$cores" || exit 1
echo "data ready after $(( $(date +%s) - start )) s"

# GPU settings: 4x the batch at 2x the rate (square-root scaling), loader processes on the
# cores the GPU leaves, torch's own thread count; the recipe's name, so runs/NAME as here.
name=$($py - "$recipe" "$epochs" "$cores" runs/device_recipe.yaml <<'EOF'
import sys
import yaml
recipe, epochs, cores, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = yaml.safe_load(open(recipe))
optim = cfg.setdefault("optim", {})
optim.update(epochs=epochs, batch_size=4 * optim.get("batch_size", 16),
             lr=2 * optim.get("lr", 2e-3), workers=max(1, min(12, cores - 2)), threads=0)
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
print(cfg["name"])
EOF
) || exit 1
timeout "${minutes}m" $py -m detector.cli train --config runs/device_recipe.yaml 2>&1 \
  | tee "$out/$name.log"
echo "training stopped after $(( $(date +%s) - start )) s (status ${PIPESTATUS[0]}; 124: time cap)"
[ -f "runs/$name/last.pt" ] || { echo "no checkpoint was written" >&2; exit 1; }
$py -m detector.cli export "runs/$name/last.pt" --out "$out/${name}_last.onnx" \
  --name "$name" --version device || exit 1
cp "runs/$name/last.pt" "$out/${name}_last.pt"
cp "runs/$name/metrics.csv" runs/device_recipe.yaml "$out/"
ls -la "$out"
