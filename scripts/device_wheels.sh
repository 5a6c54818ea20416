#!/usr/bin/env bash
# The Python packages that training needs and a lent GPU machine lacks, as wheels for its
# Python (3.12, x86-64) in .whl/ (git-ignored), at the versions installed here; the device
# tool carries them (carry: [".whl"]) and scripts/device_train.sh installs them there.
# That machine's image has torch, torchvision, onnx, onnxruntime, opencv, numpy, scipy, yaml,
# tqdm, matplotlib and tensorboard (/work/.library/device/KINDS.md); the rest is below
# (xraydb, with sqlalchemy and platformdirs, for the simulation that makes the data there).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
mkdir -p .whl
for pkg in albumentations albucore pydantic pydantic_core annotated-types typing-inspection \
           simsimd stringzilla pycocotools pydicom xraydb sqlalchemy platformdirs typing_extensions; do
  version=$($py -c "from importlib.metadata import version; print(version('$pkg'))")
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "$pkg==$version"
done
du -sh .whl
