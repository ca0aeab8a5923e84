"""The shipped CSP checkpoint on Perov-5 compositions it never trained on (60 held-out rows of
``perov_5/val.csv``, the validation split of its training run, copied into tests/data)."""
from pathlib import Path

import numpy as np
import torch

from topodiff.crystal.dataset import load_dataset
from topodiff.evaluation.metrics import csp_match_rate
from topodiff.generative.checkpoint import load_generator

HELDOUT = Path(__file__).resolve().parents[1] / "data" / "crystals" / "perov5_heldout60.csv"


def _predict(model, ds, seed: int):
    from pymatgen.core import Lattice, Structure

    species = torch.as_tensor(np.concatenate([np.asarray(ds.species)[ds.atoms_of(i)] for i in range(len(ds))]))
    out = model.sample(torch.tensor(np.array(ds.num_atoms)), species=species,
                       generator=torch.Generator().manual_seed(seed))
    return [Structure(Lattice(lat.astype(float)), [int(z) for z in sp], f.astype(float)) for f, lat, sp in out.split()]


def test_shipped_csp_predicts_heldout_perovskites():
    """Match rate and RMSE near the measured validation figures (49 % / 0.079 over 189 × 8 draws);
    the bounds leave room for the sampling noise of 60 draws."""
    ds = load_dataset(HELDOUT)
    refs = [ds.structure(i) for i in range(len(ds))]
    model, _ = load_generator("perov5-csp")
    assert model.cfg.predictor_noise_scale == 0.7 and model.cfg.corrector_noise_scale == 0.5
    rate, rmse = csp_match_rate(_predict(model, ds, 0), refs)
    assert rate >= 0.35 and rmse <= 0.13, (rate, rmse)


def test_elements_a_checkpoint_never_saw_are_named_with_a_way_out():
    """NaCl on the perovskite checkpoint: the error names Cl by symbol and points to the MP checkpoints."""
    import pytest

    from topodiff.errors import TopodiffInputError

    model, _ = load_generator("perov5-csp")
    with pytest.raises(TopodiffInputError, match=r"never saw Cl \(Z = 17\).*mp20-csp"):
        model.sample(torch.tensor([2]), species=torch.tensor([11, 17]))
