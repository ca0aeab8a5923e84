"""Convert Z2Pack's WTe2 tbmodels JSON (reduced hoppings: positive R, R=0 halved; H(k)=sum hop e^{2pi i k.R} + h.c.)
into a Wannier90 _hr.dat (deg 1) with topodiff.physics.wannier90.write_hr."""
import json, sys
import numpy as np
from topodiff.physics.wannier90 import write_hr

src, dst = sys.argv[1], sys.argv[2]
d = json.load(open(src))
n = d["size"]
assert all(p == [0.0, 0.0, 0.0] for p in d["pos"]) and d["uc"] is None
hops = d["hop"]["__hoppings_dense__"]
Hs = {}
for R, mat in hops:
    M = np.array([[c["real"] + 1j * c["imag"] for c in row] for row in mat])
    Hs[tuple(R)] = M
full = {}
for R, M in Hs.items():
    if all(x == 0 for x in R):
        full[R] = full.get(R, 0) + M + M.conj().T
    else:
        full[R] = full.get(R, 0) + M
        mR = tuple(-x for x in R)
        full[mR] = full.get(mR, 0) + M.conj().T
Rs = np.array(sorted(full))
H = np.stack([full[tuple(r)] for r in Rs])
print("nrpts", len(Rs), "num_wann", n, "occ", d["occ"])
write_hr(dst, Rs, H, header="WTe2 (Z2Pack examples/tb/WTe2_chirality/data/wte2_soc.json), converted by tbmodels_to_hr.py")
