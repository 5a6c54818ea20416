#!/usr/bin/env bash
# Train one or more recipes side by side on a lent GPU machine (the workplace's device tool),
# as one prepared command that ends within MINUTES. Here, first:
#   bash scripts/device_wheels.sh          (the wheels that machine lacks, into .whl/)
# then call the device tool's run with (docs/training.md, "On a lent GPU"):
#   command: CONCEALSCAN_COMMIT=<git rev-parse --short=12 HEAD, here> \
#            bash scripts/device_train.sh 9 configs/train/dual_more5.yaml=6 \
#              configs/train/color_more5.yaml=4 configs/train/gray_more4.yaml=3
#   carry:   [".whl", "runs/recovered"]   (the recipes' init_from), timeout_s: 600
# There it installs the wheels, makes the recipes' data sets with every core
# (scripts/make_datasets.py; nothing of data/ travels), then trains the recipes at once on the
# one GPU, the loader processes shared out among them, each with the GPU settings below and
# optim.max_minutes set to the time left (early in its first epoch a run cuts its epochs to fit
# and ends its cosine there; with CONTINUE=1 a recipe that an earlier command on the same warm
# machine trained starts from that run's last.pt instead); it exports each run's last.pt and
# best.pt to ONNX and leaves them, the checkpoints, metrics.csv and the log in $OUT/NAME.tgz
# per run, plus device.log.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/device_train.sh MINUTES RECIPE[=WORKERS]..." >&2
                  exit 64; }
minutes=$1; shift
recipes=() wanted=()
for r in "$@"; do recipes+=("${r%%=*}"); [[ $r == *=* ]] && wanted+=("${r#*=}") || wanted+=(""); done
py=${PYTHON:-python3}
out=${OUT:-runs/device_out}
margin=${MARGIN_S:-100}  # seconds kept for start-up, export and packing after training
mkdir -p "$out" runs
start=$(date +%s)
deadline=$(( start + minutes * 60 ))
exec > >(tee -a "$out/device.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD NO_ALBUMENTATIONS_UPDATE=1
if ! $py -c "import albumentations, pycocotools, pydicom, xraydb" 2>/dev/null; then
  [ -d .whl ] || { echo "training packages missing, and no .whl" >&2; exit 1; }
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
# That machine's git may name another commit than the tree it got (it did, 2026-11-30).
[ -n "${CONCEALSCAN_COMMIT:-}" ] || echo "warning: CONCEALSCAN_COMMIT unset: checkpoints name" \
  "the commit the machine's git reports, $(git rev-parse --short=12 HEAD 2>/dev/null)" >&2
cores=$(nproc)
echo "== machine: $cores cores; $(free -g | awk '/Mem:/ {print $2 " GB memory"}')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: CPU run"
df -h . /dev/shm 2>/dev/null | sed 's/^/   /'
$py -c "import sys, torch, numpy, cv2, albumentations; print('   python', sys.version.split()[0],
'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__,
'cv2', cv2.__version__, 'albumentations', albumentations.__version__)" || exit 1

# Data: on disk beside the repo unless memory-backed /dev/shm has far more room.
if [ ! -e data ] && [ "$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1)" -gt 60 ] 2>/dev/null; then
  mkdir -p /dev/shm/concealscan_data && ln -s /dev/shm/concealscan_data data
  echo "   data/ -> /dev/shm/concealscan_data"
fi
args=()
for r in "${recipes[@]}"; do args+=(--recipe "$r"); done
$py scripts/make_datasets.py "${args[@]}" --workers "$cores" || exit 1
echo "== data ready after $(( $(date +%s) - start )) s"

# GPU settings: 4x the batch at 2x the rate (square-root scaling), the loader processes
# shared out evenly among the runs unless RECIPE=WORKERS says how many, the decoded-scan cache
# that they share (in /dev/shm; 2.25x the crops/s of none in benchmarks/loader_throughput.py), torch's own thread count, and the time left as max_minutes.
n=${#recipes[@]}
workers=$(( (cores - n) / n )); [ "$workers" -ge 1 ] || workers=1
left=$(( deadline - $(date +%s) - margin ))
[ "$left" -ge 60 ] || { echo "only $left s left for training: stopping" >&2; exit 1; }
names=() pids=()
for i in "${!recipes[@]}"; do
  r=${recipes[$i]} w=${wanted[$i]:-$workers}
  name=$($py - "$r" "$w" "$left" <<'EOF'
import os
import sys
import yaml
recipe, workers, left = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = yaml.safe_load(open(recipe))
optim = cfg.setdefault("optim", {})
optim.update(batch_size=4 * optim.get("batch_size", 16), lr=2 * optim.get("lr", 2e-3),
             workers=workers, threads=0, max_minutes=round(left / 60, 2))
cfg.setdefault("data", {})["cache"] = True  # decoded scans in /dev/shm, shared by the loaders
name = cfg["name"]
if os.environ.get("CONTINUE") == "1" and os.path.isfile(f"runs/{name}/last.pt"):
    # a warm machine's earlier command trained this recipe: go on from where it stopped
    os.replace(f"runs/{name}", f"runs/{name}_before")
    cfg["init_from"] = f"runs/{name}_before/last.pt"
    print(f"{name}: init_from {cfg['init_from']} (CONTINUE=1)", file=sys.stderr)
yaml.safe_dump(cfg, open(f"runs/device_{cfg['name']}.yaml", "w"), sort_keys=False)
print(cfg["name"])
EOF
) || exit 1
  names+=("$name")
  echo "== $name: $w loader processes, at most $left s of training"
  timeout $(( left + margin / 2 )) $py -m detector.cli train --config "runs/device_$name.yaml" \
    > "runs/device_$name.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"  # a plain wait would also wait for the tee behind the log
echo "== training stopped after $(( $(date +%s) - start )) s"
for name in "${names[@]}"; do
  tail -n 4 "runs/device_$name.log" | sed "s/^/   $name: /"
  for which in last best; do
    if [ -f "runs/$name/$which.pt" ]; then
      $py -m detector.cli export "runs/$name/$which.pt" --out "runs/$name/${name}_$which.onnx" \
        --name "$name" --version device > /dev/null 2>&1 &
      pids+=($!)
    fi
  done
done
wait "${pids[@]}"
for name in "${names[@]}"; do  # one archive per run: the tool brings back files of 16 MB at most
  files=("runs/device_$name.yaml" "runs/device_$name.log")
  for f in runs/$name/last.pt runs/$name/best.pt runs/$name/metrics.csv runs/$name/*.onnx \
           runs/$name/*.manifest.json; do
    [ -f "$f" ] && files+=("$f")
  done
  tar czf "$out/$name.tgz" "${files[@]}"
done
ls -la "$out"
echo "== done after $(( $(date +%s) - start )) s"
