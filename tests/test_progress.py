"""The one progress-bar helper: stderr only, delayed, switchable."""
from __future__ import annotations

import topodiff.progress as pg


def test_bar_goes_to_stderr_only_and_can_be_turned_off(capsys, monkeypatch):
    monkeypatch.setattr(pg, "DELAY_S", 0.0)
    monkeypatch.delenv("TOPODIFF_PROGRESS", raising=False)
    assert list(pg.progress(range(3), desc="phase-x")) == [0, 1, 2]
    out, err = capsys.readouterr()
    assert out == "" and "phase-x" in err and "3/3" in err
    monkeypatch.setenv("TOPODIFF_PROGRESS", "0")
    assert list(pg.progress(range(3), desc="phase-y")) == [0, 1, 2]
    out, err = capsys.readouterr()
    assert out == "" and "phase-y" not in err
    assert pg.progress_enabled(True) and not pg.progress_enabled(False)


def test_bar_waits_before_showing(capsys, monkeypatch):
    monkeypatch.delenv("TOPODIFF_PROGRESS", raising=False)
    list(pg.progress(range(100), desc="quick-phase"))   # far under DELAY_S
    assert "quick-phase" not in capsys.readouterr().err
