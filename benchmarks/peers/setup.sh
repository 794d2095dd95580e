#!/usr/bin/env bash
# Create benchmarks/peers/.venv with the peers of cadence: Keras 3 (TensorFlow and PyTorch
# backends), Poutyne and Lightning, over the CPU build of torch 2.13.0 (an unpinned torch
# would pull a CUDA build). Each peer is installed on its own, so one that cannot be installed
# here (TensorFlow has no wheel for some platforms) is reported and skipped, not fatal.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PY:-python3}"
VENV="$HERE/.venv"
PIP="$VENV/bin/python -m pip install --quiet"

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV" || { echo "setup.sh: cannot create $VENV"; exit 1; }
$VENV/bin/python -m pip install --quiet --upgrade pip
$VENV/bin/python -c "import torch" 2>/dev/null || $PIP torch==2.13.0 \
    || $PIP torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    || { echo "setup.sh: cannot install torch==2.13.0"; exit 1; }
# cadence itself (for its hand-written reference loop and its own numbers), not editable.
$PIP -e "$ROOT" || { echo "setup.sh: cannot install cadence"; exit 1; }

install() {  # install NAME PIP-ARGS...: report and go on if it fails
    local name="$1"; shift
    if $VENV/bin/python -m pip install --quiet "$@" "torch==2.13.0"; then
        echo "setup.sh: installed $name"
    else
        echo "setup.sh: could not install $name here; the benchmark will skip it"
    fi
}
install "Keras 3" "keras>=3"
install "TensorFlow (CPU)" "tensorflow-cpu" || true
install "Poutyne" "poutyne"
install "Lightning" "lightning"
$VENV/bin/python -m pip list 2>/dev/null | grep -iE "^(keras|tensorflow|tensorflow[-_]cpu|poutyne|lightning|torch) " || true
exit 0
