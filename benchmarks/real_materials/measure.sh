#!/bin/bash
# Real-material measurements behind docs/real-materials.md. Run from the repo root with the
# public example inputs unpacked under DATA (default benchmarks/_ref/real, git-ignored):
#   bi2se3/  WannierTools examples/Bi2Se3: wannier90_hr.dat (from Bi2Se3_hr.tar.gz), wannier90.win, wt.in
#   mos2/    WannierTools examples/MoS2-1Tp: wannier90_hr.dat (from the .tar.gz), wannier90.win, wt.in
#   graphene/ WannierTools examples/Graphene: Graphene_hr.dat, wt.in (= its wt.in-bands)
#   irf4/    WannierTools examples/IrF4: IrF4_hr.dat (from IrF4_hr.tar.gz), IrF4.win, wt.in
#   cu/      WannierTools examples/Cu: wannier90_hr.dat_nsymm48 (from the .tar.gz)
#   si/      PythTB website/local/w90_example/example_a: silicon_hr.dat, silicon.win,
#            silicon_centres.xyz, silicon_band.kpt, silicon_band.dat
#   wte2/    Z2Pack examples/tb/WTe2_chirality/data/wte2_soc.json(.xz), converted by tbmodels_to_hr.py
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
D=${DATA:-benchmarks/_ref/real}; O=${OUT:-runs/real_materials}; B=benchmarks/real_materials; mkdir -p $O
T="/usr/bin/time -f %U+%S_cpu_s_%e_wall_s_%M_KB"
[ -f $D/wte2/wte2_hr.dat ] || .venv/bin/python $B/tbmodels_to_hr.py $D/wte2/wte2_soc.json $D/wte2/wte2_hr.dat
run() { name=$1; shift; echo "== $name: $*" > $O/$name.log; $T "$@" > $O/$name.json 2>> $O/$name.log; echo "rc $?" >> $O/$name.log; }
run bi2se3_inv .venv/bin/topodiff invariants $D/bi2se3/wannier90_hr.dat --json
run bi2se3_z2 .venv/bin/python $B/z2_time.py $D/bi2se3/wannier90_hr.dat
run z2pack_bi2se3 .venv/bin/python $B/z2pack_bi2se3.py $D/bi2se3/wannier90_hr.dat
run mos2_inv .venv/bin/topodiff invariants $D/mos2/wannier90_hr.dat --json
run mos2_half .venv/bin/topodiff invariants $D/mos2/wannier90_hr.dat --filling 24 --json
run graphene_bands .venv/bin/topodiff bands $D/graphene/Graphene_hr.dat --filling 1 --json
run si_bands .venv/bin/python $B/si_bands.py $D/si
run cu_bands .venv/bin/topodiff bands $D/cu/wannier90_hr.dat_nsymm48 --filling 5 --json
run irf4_weyl .venv/bin/topodiff weyl $D/irf4/IrF4_hr.dat --json
run wte2_weyl .venv/bin/topodiff weyl $D/wte2/wte2_hr.dat --filling 56 --json
run z2pack_wte2 .venv/bin/python $B/z2pack_wte2.py $D/wte2/wte2_hr.dat
