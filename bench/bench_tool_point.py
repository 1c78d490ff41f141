"""Figures of the tool point (issue 18, docs/tool_point.md): reach and targets per tool.

    python bench/bench_tool_point.py [--n 200000]

For each tool preset: the arm's reach from the shoulder, and the share of Algorithm 1's targets
(tool points of configurations drawn uniformly in the joint limits) that fall outside the Omega
normalisation square (+-1.05 m, reach_core.scene.WORKSPACE) and are therefore drawn again
(PlanarArm.keep_in_box).
"""
from __future__ import annotations

import argparse

import numpy as np

from reach_core.kinematics import TARGET_BOX, TOOL_PRESETS, tool_arm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"{'tool':<30}{'m from w1':>10}{'reach m':>9}{'outside +-' + str(TARGET_BOX) + ' m':>18}")
    for name, length in TOOL_PRESETS.items():
        arm = tool_arm(name)
        q = arm.sample_joints(np.random.default_rng(a.seed), a.n)
        outside = 1.0 - arm.inside_box(q).mean()
        print(f"{name:<30}{length:>10.4f}{arm.reach:>9.3f}{100 * outside:>17.1f}%")


if __name__ == "__main__":
    main()
