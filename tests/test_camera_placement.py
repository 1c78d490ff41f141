"""Camera placement guidance: the geometry of scripts/plot_camera_placement.py (which side of the
arm's plane needs which ``flip``), the webcam's own flip doing what the figure says, and the
figure itself (written by the script, small, shown in docs/camera.md and the README)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def script():
    spec = importlib.util.spec_from_file_location('plot_camera_placement',
                                                  ROOT / 'scripts' / 'plot_camera_placement.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_camera_a_sees_forward_to_the_right_and_camera_b_needs_a_horizontal_flip():
    p = script()
    d = p.plane_forward()
    places = p.camera_places()
    for name, (pos, view) in places.items():
        assert abs(view @ d) < 1e-12, 'optical axis square to the plane'
        middle = p.SHOULDER + 0.45 * d
        assert np.linalg.norm(pos - middle) == pytest.approx(p.CAMERA_DISTANCE)
    assert p.image_right(places['A'][1]) @ d > 0.99 and p.flip_for(places['A'][1]) == 'none'
    assert p.image_right(places['B'][1]) @ d < -0.99 and p.flip_for(places['B'][1]) == 'horizontal'
    # camera A stands on Baxter's side of the plane (in front of it), B on the outer side
    body = -p.SHOULDER
    assert (places['A'][0] - p.SHOULDER) @ body > 0 > (places['B'][0] - p.SHOULDER) @ body


def test_the_webcams_horizontal_flip_turns_camera_bs_frame_into_camera_as():
    from reach_core.frame_orientation import orient_frame
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[20:28, 2:10] = 255                       # the hand, on the left: camera B's view
    out = orient_frame(frame, 'horizontal', 0, 0.0)
    assert out[24, 64 - 6].max() == 255 and out[24, 6].max() == 0


def test_the_figure_is_written_small_and_shown_in_the_docs_and_the_readme(tmp_path):
    out = script().figure(str(tmp_path / 'placement.png'))
    data = Path(out).read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) < 200_000
    committed = ROOT / 'docs' / 'camera_placement.png'
    assert committed.stat().st_size < 200_000
    assert '](camera_placement.png)' in (ROOT / 'docs' / 'camera.md').read_text()
    assert 'src="docs/camera_placement.png"' in (ROOT / 'README.md').read_text()
