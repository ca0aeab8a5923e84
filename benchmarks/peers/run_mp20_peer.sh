#!/usr/bin/env bash
# DiffCSP beside topodiff on MP-20 at the same CPU budget (issue #14 item 3): train DiffCSP's
# ab-initio (gen) and CSP models on topodiff's training file, one thread each, for the CPU seconds
# topodiff's own runs used; sample; score both with benchmarks/bench_mp20.py.
#
#   benchmarks/peers/run_mp20_peer.sh            # from the repo root; logs under runs/peer_diffcsp_*
#
# Environment (defaults in brackets):
#   DIFFCSP_ROOT [/work/peers/DiffCSP]   PEER_PATH [/work/peers/shim:/work/peers/site]
#   TRAIN [data/mp20/train.csv]          VAL [data/mp20/val.csv if present]
#   GEN_BUDGET / CSP_BUDGET: CPU seconds; default: read from runs/mp20_default/DONE and
#       runs/mp20_csp/DONE (waiting for them until WAIT_UNTIL [18:00 UTC], then FALLBACK_BUDGET [3000])
#   GEN_NUM [from the measured sampler speed: what fits SAMPLE_CPU_S (1500 CPU s)]; CSP_NUM likewise,
#       at most 200 (the first rows of mp_20/test)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_MININTERVAL=60
DIFFCSP_ROOT=${DIFFCSP_ROOT:-/work/peers/DiffCSP}
PEER_PATH=${PEER_PATH:-/work/peers/shim:/work/peers/site}
TRAIN=${TRAIN:-data/mp20/train.csv}
VAL=${VAL:-data/mp20/val.csv}
TEST=${TEST:-../shared/data/mp_20/test.csv.gz}
WAIT_UNTIL=${WAIT_UNTIL:-18:00}
FALLBACK_BUDGET=${FALLBACK_BUDGET:-3000}
SAMPLE_CPU_S=${SAMPLE_CPU_S:-1500}
PY=.venv/bin/python
VALARG=()
[[ -f "$VAL" ]] && VALARG=(--val "$VAL")

budget_from() {  # CPU seconds in a DONE file: a JSON key with "cpu" in it, else the first number
    $PY - "$1" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
try:
    obj = json.loads(text)
    vals = [v for k, v in obj.items() if "cpu" in k.lower()] if isinstance(obj, dict) else [obj]
    print(float(vals[0]))
except Exception:
    print(float(re.findall(r"[0-9]+(?:\.[0-9]+)?", text)[0]))
EOF
}

deadline=$(date -u -d "$WAIT_UNTIL" +%s)
while [[ ! -f runs/mp20_default/DONE || ! -f runs/mp20_csp/DONE ]] && (( $(date -u +%s) < deadline )); do
    sleep 30
done
note=""
if [[ -f runs/mp20_default/DONE ]]; then GEN_BUDGET=${GEN_BUDGET:-$(budget_from runs/mp20_default/DONE)}; else note="$note gen:fallback"; fi
if [[ -f runs/mp20_csp/DONE ]]; then CSP_BUDGET=${CSP_BUDGET:-$(budget_from runs/mp20_csp/DONE)}; else note="$note csp:fallback"; fi
GEN_BUDGET=${GEN_BUDGET:-$FALLBACK_BUDGET}
CSP_BUDGET=${CSP_BUDGET:-$FALLBACK_BUDGET}
echo "$(date -u +%FT%TZ) budgets: gen $GEN_BUDGET CPU s, csp $CSP_BUDGET CPU s${note}" | tee runs/peer_diffcsp_budgets.txt

peer() {  # mode budget num [extra args...]
    local mode=$1 budget=$2 num=$3; shift 3
    PYTHONPATH=$PEER_PATH nice -n 5 $PY benchmarks/peers/diffcsp_peer.py --diffcsp-root "$DIFFCSP_ROOT" \
        --mode "$mode" --train "$TRAIN" "${VALARG[@]}" --out "runs/peer_diffcsp_$mode" \
        --cpu-seconds "$budget" --num "$num" --resume "$@"
}
# 1) train both (one thread each, in parallel); no sampling yet
peer gen "$GEN_BUDGET" 1 --no-sample > runs/peer_diffcsp_gen.train.json 2> runs/peer_diffcsp_gen.train.log &
peer csp "$CSP_BUDGET" 1 --no-sample --csp-input "$TEST" > runs/peer_diffcsp_csp.train.json 2> runs/peer_diffcsp_csp.train.log &
wait
# 2) how many crystals fit the sampling budget: the measured sampler cost per crystal
#    (SAMPLE_PER_CRYSTAL_CPU_S, measured by the smoke run) sets the number; capped at 1000 / 200
PER=${SAMPLE_PER_CRYSTAL_CPU_S:-60}
GEN_NUM=${GEN_NUM:-$($PY -c "print(max(1, min(1000, int($SAMPLE_CPU_S / $PER))))")}
CSP_NUM=${CSP_NUM:-$($PY -c "print(max(1, min(200, int($SAMPLE_CPU_S / $PER))))")}
echo "$(date -u +%FT%TZ) sampling gen $GEN_NUM, csp $CSP_NUM (about $PER CPU s per crystal)" | tee -a runs/peer_diffcsp_budgets.txt
peer gen "$GEN_BUDGET" "$GEN_NUM" --sample-batch "$GEN_NUM" > runs/peer_diffcsp_gen.json 2> runs/peer_diffcsp_gen.sample.log &
peer csp "$CSP_BUDGET" "$CSP_NUM" --sample-batch "$CSP_NUM" --csp-input "$TEST" > runs/peer_diffcsp_csp.json 2> runs/peer_diffcsp_csp.sample.log &
wait
# 3) score (topodiff's rows are added by the lead with --denovo/--csp NAME=PATH of its outputs)
nice -n 5 $PY benchmarks/bench_mp20.py --denovo "DiffCSP at our budget=runs/peer_diffcsp_gen/samples" \
    --csp "DiffCSP at our budget=runs/peer_diffcsp_csp/samples" ${BENCH_EXTRA:-} \
    --json runs/bench_mp20_peer.json --markdown runs/bench_mp20_peer.md 2> runs/bench_mp20_peer.log
echo "$(date -u +%FT%TZ) done: runs/bench_mp20_peer.md" | tee -a runs/peer_diffcsp_budgets.txt
