"""The proxy domain's contact sheet (a PNG of frames of each kind) and its command line,
``python -m reach_core.proxy_renderer --sheet PATH``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .assets import ProxyRenderError
from .render import render_proxy
from .seeds import LOOK_SEED_STRIDE, PROXY_COLLECT_SEED

SHEET_MODES = (("painted", False), ("physical", False), ("none", True))


def contact_sheet(path, seed: int = PROXY_COLLECT_SEED, per_mode: int = 4, tile: int = 240) -> Path:
    """A PNG of ``per_mode`` frames of each kind (painted target: no disc; physical disc;
    calibration marker), one kind a row, ``tile`` px wide each, quantised to stay small."""
    import cv2
    from PIL import Image

    from ..renderer import sample_scenes
    rows = []
    for k, (mode, marker) in enumerate(SHEET_MODES):
        target, q = sample_scenes(per_mode, seed + k)
        frames = render_proxy(target, q, seed=seed * LOOK_SEED_STRIDE + 100 * k,
                              target_mode=mode, marker=marker)
        label = "marker" if marker else mode
        tiles = []
        for frame in frames:
            small = cv2.resize(frame, (tile, tile * frame.shape[0] // frame.shape[1]),
                               interpolation=cv2.INTER_AREA)
            cv2.putText(small, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(small)
        rows.append(np.concatenate(tiles, axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0)).quantize(colors=160, method=Image.MEDIANCUT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def main(argv=None) -> int:
    """``python -m reach_core.proxy_renderer --sheet PATH``: write the contact sheet."""
    import argparse
    parser = argparse.ArgumentParser(description="The held-out realistic proxy domain: write a "
                                                 "contact sheet of its frames.")
    parser.add_argument("--sheet", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=PROXY_COLLECT_SEED)
    args = parser.parse_args(argv)
    try:
        out = contact_sheet(args.sheet, args.seed)
    except (ProxyRenderError, OSError) as err:
        print(f"error: {err}")
        return 2
    print(f"wrote {out} ({out.stat().st_size // 1024} kB)")
    return 0
