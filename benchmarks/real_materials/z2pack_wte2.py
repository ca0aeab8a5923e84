"""Z2Pack 2.2.1 chirality of WTe2's two nodes exactly as its examples/tb/WTe2_chirality/run.py asks
(spheres at (0.1203, 0.05232, 0) and (0.1211, 0.02887, 0), radius 0.005), with H(k) from topodiff's
reader of the converted model (z2pack.hm.System instead of tbmodels, which is not installed here)."""
import sys, time
import numpy as np
import z2pack
from topodiff.physics.io import load_model
m = load_model(sys.argv[1], filling=56)
system = z2pack.hm.System(lambda k: m.hamiltonian(np.asarray(k)[None], convention=1).numpy()[0], dim=3, bands=56,
                          hermitian_tol=1e-5)
for tag, c, kw in (("0", [0.1203, 0.05232, 0.0], {}), ("1", [0.1211, 0.02887, 0.0], {"iterator": range(10, 33, 2)})):
    t = time.process_time(); w = time.perf_counter()
    res = z2pack.surface.run(system=system, surface=z2pack.shape.Sphere(c, 0.005), **kw)
    print(f"z2pack sphere {tag} at {c}: Chern {z2pack.invariant.chern(res)} cpu {time.process_time() - t:.1f} s wall {time.perf_counter() - w:.1f} s", flush=True)
