#!/usr/bin/env bash
# A matched pair's candidates (universal_v<V>_rule.md, V = 20, 21, ...): each run's last-40-minute weight average ->
# package -> adoption (two halves side by side, 1 thread each) -> corrections on the 34 spine objects beside
# box-first -> lasso-first. Usage: judge_pair.sh V a|b   (each run once its schedule has ended; out runs/judgeV/a|b)
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root, wherever it is checked out
V=$1
R=$2
J=runs/judge$V/$R
mkdir -p $J
date > $J/started.txt
.venv/bin/python -m training.average_weights runs/cpu-universal-v$V$R --last-minutes 40 --out $J/c.npz > $J/avg.txt 2>&1
.venv/bin/python -m training.package_model --config training/configs/cpu_universal_v$V$R.json --weights $J/c.npz --out $J/pkg > $J/pkg.txt 2>&1
.venv/bin/python -m training.evaluation.adoption --model $J/pkg --out $J/p1 --parts spine,standin --threads 1 > $J/p1.txt 2>&1 &
.venv/bin/python -m training.evaluation.adoption --model $J/pkg --out $J/p2 --parts other,ellipsoid,corrections --threads 1 > $J/p2.txt 2>&1 &
wait
date >> $J/started.txt
S="../shared/data/spine_mri_vertebral_bodies_t2 ../shared/data/spine_mri_vertebral_bodies_waterfat ../shared/data/spine_mri_intervertebral_discs"
.venv/bin/python -m training.evaluation.corrections --model $J/pkg --objects spine-val --threads 1 > $J/corr34.txt 2>&1 &
.venv/bin/python -m training.evaluate $S --split training/split.json --subset val --max-clicks 5 --first-prompt box \
    --backend onnx --threads 1 --baselines '' --model $J/pkg --out $J/box --quiet > $J/box.txt 2>&1 &
wait
.venv/bin/python -m training.evaluate $S --split training/split.json --subset val --max-clicks 5 --first-prompt lasso \
    --backend onnx --threads 1 --baselines '' --model $J/pkg --out $J/lasso --quiet > $J/lasso.txt 2>&1
date >> $J/started.txt
echo done
