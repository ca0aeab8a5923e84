"""Regenerate tbmodels_1.4.3.json. TBmodels 1.4.3 pins numpy < 2, so it runs in its own venv:

    .venv/bin/python -c "..."   # step 1 (topodiff venv): dump tbmodels_arguments(build_model(name)) of
                                # haldane and kane_mele to /tmp/h8_args.json as [R, Re T_R, Im T_R] lists
    python3 -m venv /tmp/tbm && /tmp/tbm/bin/pip install tbmodels==1.4.3
    /tmp/tbm/bin/python tests/data/interop/make_tbmodels_fixture.py      # step 2: this script
"""
import json
import numpy as np
import tbmodels

args = json.load(open("/tmp/h8_args.json"))
k = np.random.default_rng(3).random((12, 2))
fixture = {"source": f"generated with TBmodels {tbmodels.__version__} (numpy {np.__version__}) from "
                     "topodiff.physics.interop.tbmodels_arguments of the built-in haldane and kane_mele models",
           "k": k.tolist(), "models": {}}
for name, a in args.items():
    hop = {tuple(R): np.array(re) + 1j * np.array(im) for R, re, im in a["hop"]}
    m = tbmodels.Model(hop=hop, pos=a["pos"], uc=a["uc"], occ=a["occ"], dim=a["dim"], size=a["size"], contains_cc=True)
    ev = np.array([m.eigenval(kk) for kk in k])
    fixture["models"][name] = {
        "hop": [[list(map(int, R)), np.real(np.asarray(M)).round(15).tolist(), np.imag(np.asarray(M)).round(15).tolist()]
                for R, M in m.hop.items()],
        "pos": np.asarray(m.pos).tolist(), "uc": np.asarray(m.uc).tolist(), "occ": m.occ, "dim": m.dim,
        "size": m.size, "eigenvalues": ev.tolist()}
json.dump(fixture, open("/tmp/h8_tbmodels_fixture.json", "w"))
print("ok", {n: len(v["hop"]) for n, v in fixture["models"].items()})
