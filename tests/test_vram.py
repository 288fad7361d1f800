"""The memory pre-check: the estimate grows with pixels and batch; risky requests get a safer suggestion."""

import pytest

from sdxl_nb.vram import GIB, estimate_peak_bytes, precheck


def test_estimate_grows_with_pixels_batch_and_precision_and_chunks_lower_it():
    base = estimate_peak_bytes(1024, 1024, 1)
    assert estimate_peak_bytes(1024, 1024, 2) > base
    assert estimate_peak_bytes(1536, 1536, 1) > base
    assert estimate_peak_bytes(1024, 1024, 1, dtype_bytes=4) > base
    assert estimate_peak_bytes(1024, 1024, 4, chunk_size=1) == base
    assert 8 * GIB < base < 14 * GIB  # SDXL fp16 at 1024x1024: about 9-11 GiB in public reports
    assert estimate_peak_bytes(1024, 1024, 1, heavy=False) < GIB


def test_fitting_request_is_not_risky():
    check = precheck(1024, 1024, 1, free_bytes=24 * GIB, device="cuda")
    assert not check.risky and check.suggestion == {} and "fits" in check.message


def test_loaded_weights_are_not_needed_twice():
    weights = 7 * GIB
    cold = precheck(1024, 1024, 1, free_bytes=8 * GIB, weights_bytes=weights)
    warm = precheck(1024, 1024, 1, free_bytes=8 * GIB, weights_bytes=weights, resident_bytes=weights)
    assert cold.risky and not warm.risky
    assert warm.needed_bytes == cold.needed_bytes - weights


def test_risky_batch_gets_the_largest_batch_that_fits():
    check = precheck(1024, 1024, 4, free_bytes=16 * GIB, device="cuda")
    assert check.risky
    batch = check.suggestion["batch"]
    assert 1 <= batch < 4
    assert not precheck(1024, 1024, batch, free_bytes=16 * GIB).risky
    assert precheck(1024, 1024, batch + 1, free_bytes=16 * GIB).risky
    assert f"try batch {batch}" in check.message and "16.0 GiB free on cuda" in check.message


def test_risky_size_gets_a_smaller_size_with_the_same_aspect_in_multiples_of_8():
    check = precheck(1536, 640, 1, free_bytes=9 * GIB)
    assert check.risky
    width, height = check.suggestion["width"], check.suggestion["height"]
    assert width % 8 == 0 and height % 8 == 0 and width < 1536
    assert width / height == pytest.approx(1536 / 640, rel=0.05)
    assert not precheck(width, height, 1, free_bytes=9 * GIB).risky


def test_nothing_fits_says_so():
    check = precheck(1024, 1024, 1, free_bytes=GIB)
    assert check.risky and check.suggestion == {} and "lighter model" in check.message
