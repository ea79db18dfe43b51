#!/usr/bin/env bash
# Train on a lent GPU machine (PyTorch + numpy + scipy; no Paddle, no network), examples made on the GPU:
#
#   here:   python -m training.carry pack --init runs/init/bundled_v1.npz --out runs/gpu_pack.npz   # < 60 MiB
#   device: bash training/gpu_train.sh 480        (carry: runs/gpu_pack.npz)
#
# Argument 1: the time limit in seconds (default 480); further arguments go to training.torch_bridge (e.g. --steps).
# Environment: CONFIG (default training/configs/gpu_universal.json, whose "pack" names the pack), OUT (default
# runs/gpu_out; the device tool sets it), PYTHON (default python3), RUN_DIR (full checkpoints, default under /tmp).
# As it goes, $OUT receives at most 8 files: paddle_weights.npz (latest, Paddle names: `--init` for the next run),
# log.jsonl, step.txt, train.txt (the output) and snapshots/ (the 4 latest), so a run killed at its limit still
# returns weights. The full torch checkpoint (with the optimiser, ~21 MB) stays in RUN_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIMIT=${1:-480}
shift || true
CONFIG=${CONFIG:-training/configs/gpu_universal.json}
OUT=${OUT:-$ROOT/runs/gpu_out}
PY=${PYTHON:-python3}
RUN=${RUN_DIR:-$(mktemp -d /tmp/eiseg_gpu_run.XXXXXX)}
export PYTHONPATH="$ROOT:$ROOT/EISegMed3D${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT/snapshots" "$RUN"
PACK=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pack"])' "$CONFIG")
[ -f "$PACK" ] || { echo "gpu_train.sh: no pack at $PACK (make it with python -m training.carry pack ...; carry it)" >&2; exit 2; }
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu only")'
"$PY" -m training.carry weights "$PACK" --out "$RUN/init.npz" >/dev/null

copy_out() {  # atomic copies into $OUT: a temporary name, then rename
    for name in paddle_weights.npz log.jsonl step.txt; do
        [ -f "$RUN/$name" ] && cp "$RUN/$name" "$OUT/tmp_$name" && mv -f "$OUT/tmp_$name" "$OUT/$name"
    done
    if [ -d "$RUN/snapshots" ]; then
        for snap in $(ls "$RUN/snapshots" | sort | tail -n 4); do
            [ -f "$OUT/snapshots/$snap" ] || { cp "$RUN/snapshots/$snap" "$OUT/snapshots/tmp_$snap" && mv -f "$OUT/snapshots/tmp_$snap" "$OUT/snapshots/$snap"; }
        done
        for old in $(ls "$OUT/snapshots" | grep -v '^tmp_' | sort | head -n -4); do rm -f "$OUT/snapshots/$old"; done
    fi
    return 0
}
( while sleep 15; do copy_out; done ) &
COPIER=$!
trap 'kill $COPIER 2>/dev/null || true; copy_out' EXIT
set -o pipefail
"$PY" -m training.torch_bridge --config "$CONFIG" --run-dir "$RUN" --time-limit "$LIMIT" --init "$RUN/init.npz" "$@" 2>&1 \
    | tee "$OUT/train.txt"
