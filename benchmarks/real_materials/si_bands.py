"""Si (PythTB's Wannier90 example_a: silicon_hr.dat + silicon.win + silicon_centres.xyz): topodiff's
bands at the k-points of Wannier90's own silicon_band.kpt vs Wannier90's silicon_band.dat."""
import sys, time
import numpy as np
import torch
from topodiff.physics.io import load_model
from topodiff.physics.bands import band_gaps
d = sys.argv[1]
t = time.process_time()
m = load_model(f"{d}/silicon_hr.dat", filling=4)
kpt = np.loadtxt(f"{d}/silicon_band.kpt", skiprows=1)[:, :3]
e = torch.linalg.eigvalsh(m.hamiltonian(kpt)).numpy()
ref = np.loadtxt(f"{d}/silicon_band.dat")  # blocks per band: x, E (blank-line separated)
nb = m.num_bands
ref_e = ref[:, 1].reshape(nb, len(kpt)).T
diff = np.abs(np.sort(e, 1) - np.sort(ref_e, 1))
g = band_gaps(m)
print(f"num_wann {nb}, k-points {len(kpt)}, max |E_topodiff - E_wannier90| = {diff.max():.2e} eV, "
      f"mean {diff.mean():.2e} eV; gap (filling 4): {g.indirect:.4f} eV {g.kind}, VBM at {g.vbm_at} "
      f"{np.round(g.k_vbm, 3).tolist()}, CBM at {g.cbm_at} {np.round(g.k_cbm, 3).tolist()}; "
      f"cpu {time.process_time() - t:.2f} s")
