#!/usr/bin/env bash
# Rebuild the shipped `default` (property-conditioned) and `mp20-csp` generators exactly as they were
# made (issue #14): data recipe → two training runs (one CPU thread each, run side by side) → export.
# Run from the repository root; needs ../shared/data (see ../shared/data/README.md).
set -euo pipefail
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
BIN=.venv/bin

# 1) training set: mp_20/train (7,825) + mpts_52/val cells with ≤ 20 atoms + 500 prototype
#    substitutions (4.9 %); catalogue_class from the DFT catalogues, else the learned judge; the
#    Slater-Koster screen labels the prototypes only (topo_class); ~2 min
$BIN/topodiff dataset recipe configs/data/mp20.yaml --out data/mp20

# 2) both generators, side by side (24,000 steps of batch 64 each; see each config's header)
$BIN/topodiff train --config configs/mp20.yaml &
$BIN/topodiff train --config configs/mp20-csp.yaml &
wait
# (interrupted? `topodiff train --config configs/mp20.yaml --resume` continues the same run)

# 3) `default` continued (next session, 2026-12-03 21:00-22:05 UTC): 16,000 more steps of the same run.
#    As run: --resume trainer.max_steps=48000 to step 27,000 (stopped by hand), then
#    --resume trainer.max_steps=40000 to the end (the cosine schedule re-spans to max_steps on each
#    launch: lr 5.3e-4 at step 24,000, 2.8e-4 at 27,000, 5e-5 at 40,000). To reproduce in one launch:
$BIN/topodiff train --config configs/mp20.yaml --resume trainer.max_steps=40000

# 4) export the EMA weights, then store the sampler settings chosen on data/mp20/val.csv
#    (docs/generator.md, "Species reveal order")
$BIN/python -m topodiff.generative.checkpoint runs/mp20_default/last.ckpt src/topodiff/checkpoints/default.ckpt \
  --description "default: conditioned on catalogue_class, topo_class, band_gap, chemical_system, space_group, num_atoms; trained on configs/data/mp20.yaml (Materials Project), EMA weights at step 040000" \
  --command "scripts/train_mp20.sh"
$BIN/python -m topodiff.generative.checkpoint src/topodiff/checkpoints/default.ckpt --set species_reveal=confident \
  --set species_reveal_noise=3.0 --set resample_structure=true --note "chosen on data/mp20/val.csv (docs/generator.md)"
# 5) (2026-12-04, weights untouched) the element-count table that `--sampler element_count=data` draws
#    from (training crystals per atom count and number of elements); newly trained checkpoints record it themselves
$BIN/python -m topodiff.generative.checkpoint src/topodiff/checkpoints/default.ckpt --element-counts-from data/mp20/train.csv
$BIN/python -m topodiff.generative.checkpoint runs/mp20_csp/last.ckpt src/topodiff/checkpoints/mp20-csp.ckpt \
  --description "mp20-csp: crystal structure prediction for Materials Project compositions (≤ 20 atoms); trained on configs/data/mp20.yaml" \
  --command "scripts/train_mp20.sh"
# 6) (2026-12-04) the CSP template library of `topodiff csp --templates mp20`: the training crystals'
#    cells (float32, 0.9 MB), never a test row; docs/mp20-benchmark.md "CSP on known templates"
$BIN/python -m topodiff.generative.templates data/mp20/train.csv src/topodiff/checkpoints/mp20.templates.npz

# 7) (2026-12-04) the known topological insulators among them (the DFT catalogues' label only, 353
#    crystals; what the substitution baseline starts from): `--templates mp20-ti` of the main job
$BIN/python -m topodiff.generative.templates data/mp20/train.csv src/topodiff/checkpoints/mp20-ti.templates.npz \
  --where catalogue_class=ti --where catalogue_source=catalogue

# 8) (2026-12-05) the formula model beside `default` (`generate --formulas auto` draws each cell formula
#    with it; the network then places the atoms): a GRU over cell formulas, conditioned on catalogue_class,
#    band_gap and space_group, early-stopped on data/mp20/val.csv (~5 min on one thread);
#    docs/generator.md "The formula model"
$BIN/topodiff formula train --train data/mp20/train.csv --val data/mp20/val.csv \
  --out src/topodiff/checkpoints/default.formula.ckpt --seed 0 --json

# 9) (2026-12-05) mp20-csp finished: 12,000 more steps from the step-50,000 export of step 5 at the cosine
#    schedule's end learning rate (5e-5, constant; ~29 min on one thread), then exported over it and its
#    sampler settings (predictor / corrector noise 0.7 / 0.5, chosen at step 50,000) stored again.
#    Val (309, one sample): 25.6 -> 28.5 % and 24.9 -> 27.5 % (two sampling seeds); docs/mp20-benchmark.md
$BIN/topodiff train --config configs/mp20-csp-finish.yaml
$BIN/python -m topodiff.generative.checkpoint runs/mp20_csp_finish/last.ckpt src/topodiff/checkpoints/mp20-csp.ckpt \
  --description "mp20-csp: CSP for Materials Project compositions; step 50,000 + 12,000 at lr 5e-5 (configs/mp20-csp-finish.yaml)" \
  --command "scripts/train_mp20.sh"
$BIN/python -m topodiff.generative.checkpoint src/topodiff/checkpoints/mp20-csp.ckpt --set predictor_noise_scale=0.7 \
  --set corrector_noise_scale=0.5 --note "chosen on data/mp20/val.csv at step 50,000 (docs/mp20-benchmark.md)"
