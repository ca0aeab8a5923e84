

def test_filling_check_has_one_wording_that_makes_sense_for_any_band_count() -> None:
    from topodiff.physics.model import filling_problem

    assert filling_problem(2, 4) is None
    assert "between 1 and 3 (the model has 4 bands), got 4" in filling_problem(4, 4)
    assert "must be 1 (the model has 2 bands), got 0" in filling_problem(0, 2)
    assert "no gap to fill" in filling_problem(0, 1)  # not "between 1 and 0"
    assert "integer" in filling_problem(1.5, 4) and "integer" in filling_problem(True, 4)
    assert "integer" in filling_problem(float("nan"), 4) and "integer" in filling_problem(float("inf"), 4)  # no raise
    assert filling_problem(2.0, 4) is None
