"""Band structures, k-paths, gaps and density of states."""
from __future__ import annotations

import math

import numpy as np
import pytest

from topodiff.errors import TopodiffInputError
from topodiff.physics.bands import (band_gaps, band_structure, density_of_states, high_symmetry_path,
                                    model_dos, reciprocal_lattice, sample_path)
from topodiff.physics.library import build_model


def test_reciprocal_lattice_duality() -> None:
    A = np.array([[1.0, 0.2, 0.0], [0.3, 1.5, 0.1], [0.0, 0.4, 2.0]])
    np.testing.assert_allclose(reciprocal_lattice(A) @ A.T, 2 * np.pi * np.eye(3), atol=1e-12)
    A2 = A[:2]
    np.testing.assert_allclose(reciprocal_lattice(A2) @ A2.T, 2 * np.pi * np.eye(2), atol=1e-12)


@pytest.mark.parametrize("angle", [60.0, 120.0])
def test_hexagonal_path_K_is_a_zone_corner(angle: float) -> None:
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    lat = np.array([[2.0, 0.0], [2.0 * c, 2.0 * s]])
    path = high_symmetry_path(lat)
    labels = [lab for piece in path.pieces for lab, _ in piece]
    assert labels == ["Γ", "K", "M", "Γ"]
    K = dict(path.pieces[0])["K"] @ reciprocal_lattice(lat)
    assert np.linalg.norm(K) == pytest.approx(4 * np.pi / (3 * 2.0), rel=1e-12)


def test_graphene_dirac_point_at_K_and_bandwidth() -> None:
    g = build_model("graphene")
    bs = band_structure(g, n=301)
    assert bs.labels == ["Γ", "K", "M", "Γ"]
    iK = int(np.argmin(np.abs(bs.x - bs.ticks[1])))
    assert abs(bs.energies[iK, 1] - bs.energies[iK, 0]) < 1e-9
    np.testing.assert_allclose(bs.energies[0], [-3 * 2.7, 3 * 2.7], atol=1e-9)  # Γ: ±3|t|
    assert np.all(np.diff(bs.x) >= -1e-12)


def test_haldane_gap_matches_analytic_at_K() -> None:
    m = build_model("haldane", M=0.2, t2=0.15, phi=math.pi / 2)
    gaps = band_gaps(m, nk=60)
    expected = 2 * abs(0.2 - 3 * math.sqrt(3) * 0.15)
    assert gaps.direct == pytest.approx(expected, abs=1e-9)
    assert gaps.indirect <= gaps.direct + 1e-12
    assert np.allclose(np.sort(gaps.k_direct * 3 % 3), [1, 2]) or np.allclose(np.sort(gaps.k_direct * 3), [1, 2])


def test_fcc_path_maps_onto_model_basis() -> None:
    m = build_model("fu_kane_mele")
    path = high_symmetry_path(m)
    nodes = {lab: kap for piece in path.pieces for lab, kap in piece}
    # Γ, X and L are time-reversal-invariant momenta: 2κ is integer in any primitive basis
    for lab in ("Γ", "X", "L"):
        np.testing.assert_allclose(2 * nodes[lab], np.round(2 * nodes[lab]), atol=1e-9)
    B = reciprocal_lattice(m.lattice)
    assert np.linalg.norm(nodes["X"] @ B) == pytest.approx(2 * np.pi, rel=1e-9)  # a = 1: |ΓX| = 2π/a
    assert np.linalg.norm(nodes["L"] @ B) == pytest.approx(math.sqrt(3) * np.pi, rel=1e-9)
    k, x, ticks, labels = sample_path(path, m.lattice, 100)
    assert len(ticks) == len(labels) and any("|" in lab for lab in labels)


@pytest.mark.parametrize("handedness", [1.0, -1.0])
def test_nearly_symmetric_lattice_gets_a_path(handedness: float) -> None:
    """A cell monoclinic within 0.1 Å but not exactly (e.g. a relaxed crystal), either handedness:
    seekpath idealises it, so the path falls back to the bare lattice; Γ stays Γ."""
    a, b, c, beta = 4.0, 5.0, 6.0, math.radians(100.0)
    A = np.array([[a, 0.0, 0.0], [0.0, b, 0.0], [c * math.cos(beta), 0.0, c * math.sin(beta)]])
    A = A + np.array([[0.0, 0.02, -0.015], [0.01, 0.0, 0.02], [0.0, -0.02, 0.0]])  # strain below 0.1 Å
    A[0] *= handedness
    for atoms in (None, (np.array([[0.0, 0.0, 0.0], [0.31, 0.12, 0.77]]), np.array([14, 8]))):
        path = high_symmetry_path(A, atoms=atoms)
        nodes = [kap for piece in path.pieces for _, kap in piece]
        assert any(np.allclose(kap, 0.0) for kap in nodes)
        assert len(nodes) >= 4

def test_dos_normalised_and_gaussian() -> None:
    E, dos = density_of_states(np.zeros((10, 2)), sigma=0.1, grid=np.linspace(-1, 1, 2001))
    np.testing.assert_allclose(dos, 2 * np.exp(-0.5 * (E / 0.1) ** 2) / (0.1 * math.sqrt(2 * math.pi)), atol=1e-12)
    E, dos = model_dos(build_model("haldane"), nk=30, sigma=0.05)
    assert np.trapezoid(dos, E) == pytest.approx(2.0, rel=1e-3)


def test_bad_input() -> None:
    g = build_model("graphene")
    with pytest.raises(TopodiffInputError):
        band_structure(g, path=[("Γ", [0.0]), ("X", [0.5])])
    with pytest.raises(TopodiffInputError):
        band_gaps(g, nk=0)
    with pytest.raises(TopodiffInputError):
        density_of_states(np.zeros((3, 2)), sigma=-1)


def test_seekpath_point_names_are_printed_as_in_the_literature() -> None:
    from topodiff.physics.bands import point_label

    assert [point_label(s) for s in ("GAMMA", "SIGMA_0", "X_1", "K", "LAMBDA_2")] == ["Γ", "Σ₀", "X₁", "K", "Λ₂"]
    path = high_symmetry_path(build_model("fu_kane_mele"))
    labels = [lab for piece in path.pieces for lab, _ in piece]
    assert "Γ" in labels and not any("_" in lab or "GAMMA" in lab for lab in labels)


def test_band_figure_has_no_line_across_a_path_jump_and_no_overlapping_labels() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topodiff.physics.plots import draw_bands, spaced_labels

    # one-character labels need 2 character widths between ticks; "X|Y" and "A" need 3
    assert spaced_labels([0.0, 0.01, 0.5, 0.52, 1.0], list("ABCDE"), 0.02) == ["A", "", "C", "", "E"]
    assert spaced_labels([0.0, 0.07, 0.1], ["Γ", "X|Y", "A"], 0.02) == ["Γ", "X|Y", ""]
    m = build_model("fu_kane_mele")
    bs = band_structure(m, n=120)
    jumps = int(np.sum(np.diff(bs.x) <= 1e-12))
    assert jumps >= 1  # the fcc path has a jump (U|K)
    fig, ax = plt.subplots()
    draw_bands(ax, bs, bs.energies, color="k")
    bands = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(bands) == (jumps + 1) * bs.energies.shape[1]
    assert all(np.all(np.diff(ln.get_xdata()) > 0) for ln in bands)  # no vertical jump segment
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert shown and len(shown) <= len(bs.labels)
    plt.close(fig)
