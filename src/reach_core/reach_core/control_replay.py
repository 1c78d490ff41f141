"""The replay memory D of the control training (paper Algorithm 1) and the n-step returns that
feed it.

* :class:`InputCache` -- the network inputs and available actions of Omegas, computed once per
  transition in numpy instead of three times per update;
* :class:`ReplayMemory` -- the fixed-size circular memory D, sampled in random mini-batches;
* :class:`NStep` -- each trial's one-step transitions turned into n-step ones.

The CPU trainer (:mod:`reach_core.control_training`) and the end-to-end fine-tuning
(:mod:`reach_core.end_to_end.finetune`) use them; the vectorised trainer has its own on the device
(:mod:`reach_core.control_vec`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .control import ControlPolicy, QNetwork
from .control_numpy import NumpyPolicy
from .simulator import TaskConfig

if TYPE_CHECKING:
    from .control_training import TrainConfig


class InputCache:
    """The network input (:meth:`QNetwork.encode`: Omega, then its kinematic features) and the
    available actions (:func:`~reach_core.control.available_actions`) of Omegas, in numpy
    (:class:`~reach_core.control_numpy.NumpyPolicy`: the same float32 arithmetic as torch's to
    rounding, at a third of its per-operation cost).  They are fixed functions of Omega without
    weights, which the replay memory computes once per transition instead of three times per
    update (the kinematic features were a fifth of a CPU update)."""

    def __init__(self, policy: NumpyPolicy):
        self.policy = policy
        self.width = int(policy.inputs(np.zeros((1, 5), np.float32)).shape[1])

    @classmethod
    def of(cls, cfg: "TrainConfig", task: TaskConfig) -> "InputCache":
        """The cache of ``cfg``'s network architecture and ``task`` (its network's weights are
        never used, and making them leaves torch's random state as it was)."""
        with torch.random.fork_rng(devices=[]):
            net = QNetwork(cfg.hidden, cfg.dueling, cfg.encoding, cfg.kinematic,
                           tool_length=task.arm.tool_length)
        return cls(NumpyPolicy(ControlPolicy(net, task, {})))

    def __call__(self, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (n, width) float32, available actions (n, 9) bool) of Omegas (n, 5)."""
        x = np.ascontiguousarray(omega, dtype=np.float32)
        return self.policy.inputs(x), self.policy.available(x)


class ReplayMemory:
    """Fixed-size circular replay memory D of (Omega, a, G, Omega', discount).

    With one-step returns G is r and discount is gamma (0 at the end of a successful trial); with
    n-step returns G sums n discounted rewards and discount is gamma^n (see :class:`NStep`).

    With an :class:`InputCache` it also keeps, for each transition, the network inputs and the
    available actions of Omega and Omega' (:attr:`CACHED`; arrays that are views of one row per
    transition, ``rows``, which also repeats a, G, discount and guided, so that a mini-batch is
    one gather); :meth:`sample` then returns them after the six fields.
    """

    FIELDS = ("obs", "action", "reward", "next_obs", "discount", "guided")
    CACHED = ("obs_in", "next_in", "obs_avail", "next_avail")

    def __init__(self, size: int, cache: InputCache | None = None):
        self.size, self.pos, self.full = size, 0, False
        self.obs = np.zeros((size, 5), np.float32)
        self.next_obs = np.zeros((size, 5), np.float32)
        self.action = np.zeros(size, np.int64)
        self.reward = np.zeros(size, np.float32)
        self.discount = np.zeros(size, np.float32)
        self.guided = np.zeros(size, np.float32)  # 1 where the action came from K-GPS
        self.cache = cache
        if cache is not None:
            # row: obs_in | next_in | reward, discount, guided, action | obs_avail | next_avail
            w = cache.width
            self.rows = np.zeros((size, 2 * w + 4 + 18), np.float32)
            self.obs_in, self.next_in = self.rows[:, :w], self.rows[:, w:2 * w]
            self.obs_avail = self.rows[:, 2 * w + 4:2 * w + 13]
            self.next_avail = self.rows[:, 2 * w + 13:]

    def __len__(self) -> int:
        return self.size if self.full else self.pos

    def add(self, obs, action, reward, next_obs, discount, guided) -> None:
        n = len(action)
        idx = (self.pos + np.arange(n)) % self.size
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self.next_obs[idx], self.discount[idx], self.guided[idx] = next_obs, discount, guided
        if self.cache is not None:
            self._fill(idx)
        self.full = self.full or self.pos + n >= self.size
        self.pos = (self.pos + n) % self.size

    def _fill(self, idx: np.ndarray) -> None:
        """The rows of the transitions at ``idx``, from the six fields."""
        n = len(idx)
        x, avail = self.cache(np.concatenate([self.obs[idx], self.next_obs[idx]]))
        self.rows[idx] = np.concatenate([x[:n], x[n:], self.reward[idx, None], self.discount[idx, None],
                                         self.guided[idx, None], self.action[idx, None],
                                         avail[:n], avail[n:]], axis=1)

    def sample(self, rng: np.random.Generator, batch: int, device: str = "cpu") -> tuple[torch.Tensor, ...]:
        """A mini-batch: the six :attr:`FIELDS`, then with a cache the four :attr:`CACHED`
        (then Omega and Omega' are the first five columns of their inputs)."""
        idx = rng.integers(0, len(self), size=batch)
        if self.cache is None:
            return tuple(torch.from_numpy(getattr(self, k)[idx]).to(device) for k in self.FIELDS)
        w = self.cache.width
        r = torch.from_numpy(self.rows[idx]).to(device)
        avail = r[:, 2 * w + 4:] != 0
        g = 2 * w   # reward, discount, guided, action
        return (r[:, :5], r[:, g + 3].long(), r[:, g], r[:, w:w + 5], r[:, g + 1], r[:, g + 2],
                r[:, :w], r[:, w:g], avail[:, :9], avail[:, 9:])

    def state(self) -> dict:
        return {k: getattr(self, k) for k in self.FIELDS} | {
            "pos": np.int64(self.pos), "full": np.bool_(self.full)}

    def load_state(self, state) -> None:
        for k in self.FIELDS:
            getattr(self, k)[...] = state[k]
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        if self.cache is not None:   # recomputed, not stored
            for start in range(0, len(self), 65536):
                self._fill(np.arange(start, min(len(self), start + 65536)))


class NStep:
    """Turns each trial's stream of one-step transitions into n-step ones.

    It keeps the last ``n`` (Omega, a, r) of every trial.  A transition leaves once n later rewards
    are known, with G = sum_i gamma^i r_i and discount gamma^n; when a trial ends, all it holds
    leave with the rewards up to the end (discount 0 after success, gamma^k after truncation,
    which bootstraps from the last Omega).
    """

    STATE = ("obs", "action", "reward", "guided", "count")

    def __init__(self, n: int, num_envs: int, gamma: float):
        self.n, self.gamma = n, gamma
        self.obs = np.zeros((num_envs, n, 5), np.float32)
        self.action = np.zeros((num_envs, n), np.int64)
        self.reward = np.zeros((num_envs, n))
        self.guided = np.zeros((num_envs, n), np.float32)
        self.count = np.zeros(num_envs, np.int64)  # valid entries, newest at index n-1
        self.powers = gamma ** np.arange(n + 1)

    def push(self, obs, action, reward, next_obs, terminated, truncated, guided) -> tuple[np.ndarray, ...]:
        n = self.n
        for a in (self.obs, self.action, self.reward, self.guided):
            a[:, :-1] = a[:, 1:].copy()
        self.obs[:, -1], self.action[:, -1], self.reward[:, -1] = obs, action, reward
        self.guided[:, -1] = guided
        self.count = np.minimum(self.count + 1, n)
        done = terminated | truncated
        out = []
        full = ~done & (self.count == n)  # the oldest entry has its n rewards
        if full.any():
            g = self.reward[full] @ self.powers[:n]
            out.append((self.obs[full, 0], self.action[full, 0], g, next_obs[full],
                        np.full(g.shape, self.powers[n]), self.guided[full, 0]))
            self.count[full] -= 1
        for e in np.flatnonzero(done):  # flush a finished trial
            k = int(self.count[e])
            rew = self.reward[e, n - k:]
            g = np.array([rew[i:] @ self.powers[:k - i] for i in range(k)])
            disc = 0.0 if terminated[e] else self.powers[k - np.arange(k)]
            out.append((self.obs[e, n - k:], self.action[e, n - k:], g,
                        np.repeat(next_obs[e][None], k, axis=0), np.broadcast_to(disc, (k,)),
                        self.guided[e, n - k:]))
            self.count[e] = 0
        if not out:
            return ()
        return tuple(np.concatenate(parts) for parts in zip(*out))
