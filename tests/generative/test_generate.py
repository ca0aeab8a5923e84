"""generate / csp output files and the CLI's input errors (with a tiny throw-away checkpoint)."""
import json

import numpy as np
import pytest
import torch

from generative.helpers import make_batch
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.checkpoint import save_generator
from topodiff.generative.csp import csp_to_dir
from topodiff.generative.generate import generate_to_dir, min_distances


@pytest.fixture
def ckpt(tiny_model, tmp_path):
    b = make_batch((5, 5, 4))
    b.species = torch.tensor([38, 22, 8, 8, 8, 56, 22, 8, 8, 8, 11, 17, 8, 8])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.cfg.min_distance = 0.0  # untrained weights: do not spend the test re-sampling
    return save_generator(tiny_model, {}, tmp_path / "tiny.ckpt")


def test_min_distances_simple_cubic():
    b = CrystalBatch(torch.tensor([[0.0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.1, 0.1]]),
                     torch.stack([3.0 * torch.eye(3), 4.0 * torch.eye(3)]), torch.tensor([1, 1, 1]), torch.tensor([2, 1]))
    d = min_distances(b)
    assert d[0].item() == pytest.approx(3.0 * np.sqrt(3) / 2) and d[1].item() == pytest.approx(4.0)


def test_generate_writes_contract_files(ckpt, tmp_path):
    meta = generate_to_dir(tmp_path / "out", num=3, checkpoint=str(ckpt), steps=2, seed=1, batch_size=2)
    from ase.io import read

    frames = read(tmp_path / "out" / "structures.extxyz", index=":")
    assert len(frames) == 3 and meta["num_structures"] == 3
    assert sorted(p.name for p in (tmp_path / "out" / "cif").iterdir()) == ["0000.cif", "0001.cif", "0002.cif"]
    disk = json.loads((tmp_path / "out" / "metadata.json").read_text())
    for key in ("checkpoint", "conditions", "guidance", "steps", "seed", "wall_time_s", "structures_per_s"):
        assert key in disk
    for a in frames:
        assert bool(((a.get_scaled_positions(wrap=False) >= -1e-9) & (a.get_scaled_positions(wrap=False) < 1)).all())
        assert set(a.numbers) <= {8, 11, 17, 22, 38, 56}


def test_csp_keeps_compositions(ckpt, tmp_path):
    inp = tmp_path / "formulas.txt"
    inp.write_text("SrTiO3\n# comment\nNa2O\n")  # sampled smallest first, written in input order
    meta = csp_to_dir(inp, tmp_path / "csp", checkpoint=str(ckpt), samples=2, steps=2)
    from ase.io import read

    frames = read(tmp_path / "csp" / "structures.extxyz", index=":")
    assert meta["num_structures"] == 4 and [(a.info["index"], a.info["sample"]) for a in frames] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert sorted(frames[0].get_chemical_symbols()) == ["O", "O", "O", "Sr", "Ti"]
    assert sorted(frames[3].get_chemical_symbols()) == ["Na", "Na", "O"]
    disk = json.loads((tmp_path / "csp" / "metadata.json").read_text())
    assert disk["sampler"]["corrector_noise_scale"] == 1.0 and disk["sampler"]["sample_steps"] > 0
    bad = tmp_path / "bad.txt"
    bad.write_text("Xx2Q\n")
    with pytest.raises(TopodiffInputError):
        csp_to_dir(bad, tmp_path / "csp2", checkpoint=str(ckpt))


def test_cli_input_errors(ckpt, tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path / "a"), "--num", "0", "--checkpoint", str(ckpt)]) == 2
    assert main(["generate", "--out", str(tmp_path / "b"), "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert main(["generate", "--out", str(tmp_path / "c"), "--num", "1", "--checkpoint", str(ckpt),
                 "--condition", "band_gap=1.0"]) == 2
    assert main(["generate", "--out", str(tmp_path / "d"), "--num", "1", "--checkpoint", str(ckpt),
                 "--condition", "colour=red"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "Traceback" not in err
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    assert main(["generate", "--out", str(tmp_path / "e"), "--checkpoint", str(tmp_path / "junk.ckpt")]) == 2


def test_cli_generate_json(ckpt, tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path / "g"), "--num", "2", "--steps", "2", "--checkpoint", str(ckpt), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["num_structures"] == 2


def test_min_distances_sees_two_atoms_on_the_same_site():
    b = CrystalBatch(torch.tensor([[0.2, 0.2, 0.2], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]]),
                     torch.stack([4.0 * torch.eye(3), 4.0 * torch.eye(3)]), torch.tensor([8, 8, 8]), torch.tensor([2, 1]))
    d = min_distances(b)
    assert d[0].item() == pytest.approx(0.0, abs=1e-5) and d[1].item() == pytest.approx(4.0)


def test_min_distances_right_for_a_strongly_skewed_cell():
    """A 3 Å cubic crystal written in the basis (a, 5a + b, c): the images n ∈ {−1,0,1}³ of that cell
    miss the nearest neighbour; the neighbour list must not (oracle: brute force over |n| ≤ 8)."""
    from topodiff.generative.denoiser import periodic_distances

    cubic = 3.0 * np.eye(3)
    skew = np.array([[3.0, 0, 0], [15.0, 3.0, 0], [0, 0, 3.0]])
    cart = np.array([[0.0, 0.0, 0.0], [1.2, 1.3, 1.4]])
    frac = np.mod(cart @ np.linalg.inv(skew), 1.0)
    b = CrystalBatch(torch.tensor(frac), torch.tensor(skew)[None], torch.tensor([6, 8]), torch.tensor([2]))
    g = np.arange(-8, 9)
    shifts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    d = (frac[1] - frac[0] + shifts) @ skew
    oracle = min(np.linalg.norm(d, axis=1).min(), np.linalg.norm(shifts[np.any(shifts != 0, 1)] @ skew, axis=1).min())
    assert oracle == pytest.approx(np.linalg.norm(cart[1]))           # the cubic crystal's true neighbour
    one_deep, valid = periodic_distances(b.frac, b.lattice, b.num_atoms)
    assert float(one_deep[valid].min()) > oracle + 0.5                # the old one-cell-deep check is wrong here
    assert float(min_distances(b)[0]) == pytest.approx(oracle, abs=1e-9)


def test_chunks_group_similar_sizes_within_the_padded_pair_budget():
    """Crystals are sampled in size-sorted chunks: each chunk's padded pair tensor (items × largest
    n²) stays within PAIR_BUDGET and at most batch_size items; every job appears once, in order."""
    from topodiff.generative.generate import PAIR_BUDGET, _chunks

    sizes = [2, 3, 3, 5, 8, 20, 20, 20, 200, 200]
    chunks = _chunks(list(range(len(sizes))), sizes, batch_size=4, padded=True)
    assert [j for c in chunks for j in c] == list(range(len(sizes)))
    for c in chunks:
        assert len(c) <= 4 and (len(c) == 1 or len(c) * max(sizes[j] for j in c) ** 2 <= PAIR_BUDGET)
    assert chunks[0] == [0, 1, 2, 3]


def test_sampler_settings_for_one_run(ckpt, tmp_path, capsys):
    """--sampler replaces the checkpoint's sampler defaults for that run only: the metadata says what was
    used, the same seed samples other coordinates, the file is untouched, bad settings exit 2."""
    before = ckpt.read_bytes()
    assert main(["generate", "--out", str(tmp_path / "a"), "--num", "2", "--steps", "3", "--seed", "0",
                 "--checkpoint", str(ckpt), "--sampler", "predictor_noise_scale=0", "--sampler",
                 "corrector_noise_scale=0"]) == 0
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["sampler"]["predictor_noise_scale"] == 0.0 and meta["sampler"]["corrector_noise_scale"] == 0.0
    assert meta["sampler_overrides"] == {"predictor_noise_scale": 0.0, "corrector_noise_scale": 0.0}
    assert ckpt.read_bytes() == before
    plain = generate_to_dir(tmp_path / "plain", num=2, checkpoint=str(ckpt), steps=3, seed=0)
    assert plain["sampler"]["predictor_noise_scale"] == 1.0 and plain["sampler_overrides"] == {}
    from ase.io import read

    cold, full = (read(tmp_path / o / "structures.extxyz", index=":") for o in ("a", "plain"))
    assert not all(np.allclose(x.get_scaled_positions(), y.get_scaled_positions()) for x, y in zip(cold, full))
    capsys.readouterr()
    for bad in ("colour=1", "predictor_noise_scale=-1", "corrector_noise_scale=1e999", "species_reveal=sideways",
                "sample_steps"):
        assert main(["generate", "--out", str(tmp_path / "bad"), "--num", "1", "--checkpoint", str(ckpt),
                     "--sampler", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 5 and "Traceback" not in err
