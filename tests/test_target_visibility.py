"""The target-in-view check (reach_core.target_visibility) that stops made-up targets."""
import numpy as np
import pytest

from reach_core.renderer import add_target, render
from reach_core.scene import DEFAULT_CAMERA
from reach_core.target_visibility import find_target


def _arm_frame():
    return render(np.array([3.0, 3.0]), np.array([0.2, 0.6, -0.3]))   # target far out of view


def test_a_painted_target_is_seen_where_it_was_painted():
    target = np.array([0.55, 0.25])
    frame = add_target(_arm_frame(), target)
    seen = find_target(frame)
    assert seen.visible
    np.testing.assert_allclose(seen.centre_px, DEFAULT_CAMERA.to_pixels(target), atol=1.0)


def test_a_frame_without_a_target_says_so():
    seen = find_target(_arm_frame())
    assert not seen.visible and "no blue" in seen.reason


@pytest.mark.parametrize("rgb", [(20, 40, 140), (70, 110, 220), (40, 90, 170)])
def test_a_physical_disc_in_any_blue_and_half_hidden_still_counts(rgb):
    import cv2
    frame = _arm_frame()
    centre = DEFAULT_CAMERA.to_pixels(np.array([0.3, -0.4])).astype(int)
    cv2.ellipse(frame, tuple(int(v) for v in centre), (19, 15), 20, 0, 360, rgb, -1)
    frame[centre[1] - 30:centre[1] + 30, centre[0]:centre[0] + 30] = (30, 30, 30)   # the arm
    assert find_target(frame).visible


def test_a_blue_poster_is_not_a_target():
    frame = _arm_frame()
    frame[60:200, 120:300] = (30, 60, 200)
    seen = find_target(frame)
    assert not seen.visible and "not a target" in seen.reason


def test_a_grey_or_black_frame_is_not_a_target_and_bad_input_is_named():
    assert not find_target(np.zeros((480, 640, 3), np.uint8)).visible
    with pytest.raises(ValueError, match="uint8 colour frame"):
        find_target(np.zeros((480, 640), np.uint8))
