"""Z2Pack 2.2.1 (venv) on WannierTools' Bi2Se3 _hr.dat: Z2 of the six TRIM planes with z2pack.hm.System,
H(k) from topodiff's reader (numpy), 18 occupied bands. Prints (nu0; nu1 nu2 nu3) and CPU seconds."""
import sys, time
import numpy as np
import z2pack
from topodiff.physics.io import load_model
m = load_model(sys.argv[1])
occ = m.occupied
def ham(k):
    return m.hamiltonian(np.asarray(k)[None]).numpy()[0]
system = z2pack.hm.System(ham, dim=3, bands=occ, hermitian_tol=1e-5)
t = time.process_time(); w = time.perf_counter()
z = {}
for ax in range(3):
    for val in (0.0, 0.5):
        def surf(s, t_, ax=ax, val=val):
            free = [a for a in range(3) if a != ax]
            k = [0.0, 0.0, 0.0]; k[ax] = val; k[free[0]] = s / 2; k[free[1]] = t_
            return k
        res = z2pack.surface.run(system=system, surface=surf, num_lines=11, pos_tol=1e-2, gap_tol=0.3, move_tol=0.3)
        z[(ax, val)] = z2pack.invariant.z2(res)
nu = [z[(i, 0.5)] for i in range(3)]
nu0 = (z[(0, 0.0)] + z[(0, 0.5)]) % 2
print(f"z2pack: ({nu0}; {nu[0]} {nu[1]} {nu[2]}) planes {z} cpu {time.process_time() - t:.1f} s wall {time.perf_counter() - w:.1f} s")
