"""The shared argument checks: what they accept, and errors that name the argument, the value and what is allowed."""

import numpy as np
import pytest

from sb3_recurrent_ext.common.checks import (
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    check_range,
    check_unit_interval,
    closest_hint,
)


def test_check_range_accepts_ordered_pairs_of_numbers():
    assert check_range((-5, 5), "clip") == (-5.0, 5.0)
    assert check_range([np.float32(0.5), 2], "clip") == (0.5, 2.0)


@pytest.mark.parametrize("value", [(5, -5), (1, 1), (1, 2, 3), 5, ("a", "b"), None])
def test_check_range_names_argument_and_value(value):
    with pytest.raises(ValueError, match=r"clip=.* must be a pair \(low, high\) of numbers with low < high"):
        check_range(value, "clip")


def test_positive_int_and_unit_interval():
    assert check_positive_int(np.int64(3), "n") == 3
    assert check_unit_interval(0.25, "p") == 0.25
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n="):
            check_positive_int(bad, "n")
    with pytest.raises(ValueError, match=r"p=1\.5"):
        check_unit_interval(1.5, "p")
    assert closest_hint("lstn", ["gru", "lstm"]) == "; did you mean 'lstm'?"


def test_positive_number():
    assert check_positive_number(np.float32(0.5), "lr") == 0.5 and check_positive_number(3, "lr") == 3.0
    for bad in (0, -1e-3, "0.1", True, None, float("nan")):
        with pytest.raises(ValueError, match=r"lr=.* must be a positive number"):
            check_positive_number(bad, "lr")


def test_non_negative_number():
    assert check_non_negative_number(0, "alpha") == 0.0 and check_non_negative_number(np.float64(7), "alpha") == 7.0
    for bad in (-1e-3, "0.5", True, None, float("nan")):
        with pytest.raises(ValueError, match=r"alpha=.* must be a number >= 0"):
            check_non_negative_number(bad, "alpha")
