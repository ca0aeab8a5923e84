"""CPU time of topodiff's Z2 (six TRIM planes, WCC flow) on a Wannier file, after loading."""
import sys, time
from topodiff.physics.io import load_model
from topodiff.physics.z2 import z2_result
t = time.process_time(); m = load_model(sys.argv[1]); tl = time.process_time() - t
t = time.process_time(); w = time.perf_counter(); r = z2_result(m)
print(f"topodiff z2 {r.z2} converged {r.converged} planes {r.plane_z2} cpu {time.process_time() - t:.2f} s wall {time.perf_counter() - w:.2f} s (load cpu {tl:.2f} s)")
