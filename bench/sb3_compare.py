"""Our DQN + K-GPS trainer vs stable-baselines3's DQN on the same task and step budget.

    python bench/sb3_compare.py --dof 3 --steps 300000

SB3 sees the task through a gymnasium adapter of :class:`reach_core.simulator.ReachEnv` (one
trial at a time, the same reward, success rule and step limit) and gets the paper's network
(400, 300) and its own default DQN settings otherwise; ours runs with the configuration given by
--ours (the shipped recipe of --dof by default).  Both are evaluated with the same 400-trial
protocol (reach_core.evaluation.run_trials, seed 2017).  Prints environment steps/s, success, and
the ratios ours/SB3.  Needs the test extras (gymnasium, stable-baselines3).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import gymnasium as gym
import numpy as np
import torch

from reach_core.configs import load_recipe
from reach_core.control_training import SHIPPED_RECIPES, TrainConfig, train
from reach_core.control import ControlPolicy
from reach_core.evaluation import format_table, run_trials
from reach_core.simulator import NUM_ACTIONS, ReachEnv, TaskConfig


# the settings this comparison gives both trainers itself: not taken from the shipped recipe
OWN = ("dof", "total_steps", "eval_every", "seed", "threads")


def shipped(dof: int) -> dict:
    """The shipped controller's variants for ``dof`` (its recipe, ``SHIPPED_RECIPES``) as
    TrainConfig fields, on 2 torch threads."""
    recipe = load_recipe(SHIPPED_RECIPES[dof], TrainConfig)
    return {k: v for k, v in recipe.items() if k not in OWN} | {"threads": 2}


class ReachGym(gym.Env):
    """Gymnasium view of one reaching trial; unavailable actions (1/2-DoF) act as 'unchanged'."""

    def __init__(self, task: TaskConfig, seed: int = 0):
        self.env = ReachEnv(1, task, seed=seed, auto_reset=False)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(5,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.noop = 3 * int(np.flatnonzero(self.env.action_mask)[0] // 3) + 2

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.env.rng = np.random.default_rng(seed)
        return self.env.reset()[0], {}

    def step(self, action):
        a = int(action) if self.env.action_mask[int(action)] else self.noop
        res = self.env.step(np.array([a]))
        return (res.obs[0], float(res.reward[0]), bool(res.terminated[0]), bool(res.truncated[0]),
                {"distance": float(res.distance[0])})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dof", type=int, default=3, choices=(1, 2, 3))
    p.add_argument("--steps", type=int, default=300_000, help="environment steps for each trainer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=400)
    p.add_argument("--ours", default=None,
                   help="JSON TrainConfig overrides for our trainer (default: the shipped recipe of --dof, "
                        "reach_core/recipes/control_dof*.yaml, on 2 threads)")
    p.add_argument("--json", help="write the figures to this file")
    a = p.parse_args()
    from stable_baselines3 import DQN

    torch.set_num_threads(2)  # both learners get the 2 cores of this machine
    task = TaskConfig(dof=a.dof)
    ours = shipped(a.dof) if a.ours is None else json.loads(a.ours)
    rows, speed = {}, {}

    with tempfile.TemporaryDirectory() as tmp:
        # one evaluation, at the end: SB3 spends no time on evaluations during learning either
        cfg = TrainConfig(**({"dof": a.dof, "total_steps": a.steps, "seed": a.seed,
                              "eval_every": a.steps} | ours))
        t = time.perf_counter()
        train(cfg, os.path.join(tmp, "ours"), progress=False, log=lambda *_: None)
        speed["ours"] = a.steps / (time.perf_counter() - t)
        ours = ControlPolicy.load(os.path.join(tmp, "ours", "model.pt"))
        rows["ours (DQN+K-GPS)"] = run_trials(ours.act, task, a.trials)

    env = ReachGym(task, seed=a.seed)
    model = DQN("MlpPolicy", env, policy_kwargs={"net_arch": [400, 300]}, seed=a.seed, verbose=0,
                device="cpu")
    t = time.perf_counter()
    model.learn(total_timesteps=a.steps)
    speed["sb3"] = a.steps / (time.perf_counter() - t)
    mask = torch.as_tensor(env.env.action_mask)

    @torch.no_grad()
    def sb3_act(omega):
        q = model.policy.q_net(torch.as_tensor(omega))
        return q.masked_fill(~mask, float("-inf")).argmax(-1).numpy()

    rows["stable-baselines3 DQN"] = run_trials(sb3_act, task, a.trials)

    print(format_table(rows, f"{a.dof}-DoF, {a.steps:,} environment steps each, {a.trials} trials"))
    r_ours, r_sb3 = rows["ours (DQN+K-GPS)"], rows["stable-baselines3 DQN"]
    print(f"env steps/s: ours {speed['ours']:,.0f}, SB3 {speed['sb3']:,.0f}, "
          f"ratio {speed['ours'] / speed['sb3']:.1f}x")
    print(f"success: ours {100 * r_ours.success_rate:.1f} %, SB3 {100 * r_sb3.success_rate:.1f} %, "
          f"ratio {r_ours.success_rate / max(r_sb3.success_rate, 1e-9):.1f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"steps": a.steps, "dof": a.dof, "steps_per_s": speed,
                       "ours": r_ours.summary(), "sb3": r_sb3.summary()}, f, indent=2)


if __name__ == "__main__":
    main()
