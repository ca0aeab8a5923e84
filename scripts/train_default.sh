#!/usr/bin/env bash
# Rebuild the shipped `default` (property-conditioned) generator and its property predictor exactly as
# they were made: data recipe → labels → generator training → export → predictor → benchmarks.
# CPU, one thread per job. Run from the repository root (needs ../shared/data).
set -euo pipefail
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
BIN=.venv/bin

# 1) training set: perov_5 (1500), mp_40 (70 %; 30 % held out), 332 random crystals, 2600 prototype
#    substitutions; labelled by the Slater-Koster screen (resumable); labels.json/labels.png report
$BIN/topodiff dataset recipe configs/data/default.yaml --out data/default

# 2) the generator (~52 min on one core; trainer.max_minutes bounds it) and its export
$BIN/topodiff train --config configs/default.yaml
$BIN/python -m topodiff.generative.checkpoint runs/default/last.ckpt src/topodiff/checkpoints/default.ckpt \
  --description "default: property-conditioned (topo_class, band_gap, chemical_system, space_group, num_atoms)" \
  --command "topodiff dataset recipe configs/data/default.yaml --out data/default && topodiff train --config configs/default.yaml"

# 3) the property predictor used for pre-screening and classifier guidance
$BIN/topodiff predictor train --train data/default/train.csv --val data/default/val.csv \
  --out src/topodiff/checkpoints/default.predictor.ckpt --steps 3500 --batch-size 64 --seed 0 --json

# 4) the README table (generate 96 per target, seed 0, then screen)
$BIN/python benchmarks/bench_conditional.py --num 96 --space-groups 166,216,225 --out benchmarks/out/conditional96
$BIN/python benchmarks/bench_conditional.py --num 96 --rows gap_prescreen --prescreen 2 --out benchmarks/out/conditional96_prescreen2
