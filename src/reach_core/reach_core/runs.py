r"""Run folders: the files every training command writes, written in one place.

A training run (``reach train perception|control|end2end``) owns one folder:

================ =================================================================================
config.json      the resolved configuration (``dataclasses.asdict`` of the run's config)
checkpoint.pt    the state to resume from (weights, optimiser, generator, step, progress so far)
progress.csv     one row per evaluation (step, loss, learning rate, validation metrics)
metrics.json     the final metrics (also stored in the saved model's metadata)
tb/              the progress rows as TensorBoard scalars (``tensorboard --logdir runs``)
\\*.png           the progress plot (loss and validation metrics against steps)
================ =================================================================================

:class:`Run` writes them (the model file itself is the model class's own ``save``:
:mod:`reach_core.checkpoints`); :func:`plot_progress` draws the usual two-panel plot.  A plot is
never worth a run: one that fails is logged as a warning and the run goes on.  Messages go to
stderr (:meth:`Run.log`), so that stdout stays for the tables a command prints.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

from .checkpoints import CheckpointError, load_checkpoint, save_atomic


def log(msg: str) -> None:
    """A progress message to stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


class Run:
    """The run folder ``out`` (created if missing) and the progress rows recorded so far
    (stored in checkpoint.pt under ``rows_key``: "progress", or "history" for control runs)."""

    CONFIG, CHECKPOINT, PROGRESS, METRICS = "config.json", "checkpoint.pt", "progress.csv", "metrics.json"

    def __init__(self, out: str | Path, rows_key: str = "progress"):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.rows_key = rows_key
        self._tb = None

    @property
    def name(self) -> str:
        """The folder's name (used in plot titles)."""
        return self.out.name

    def path(self, name: str) -> Path:
        """A file of the run folder."""
        return self.out / name

    log = staticmethod(log)

    # ---------------------------------------------------------------- config
    def write_config(self, cfg) -> None:
        """Save the resolved configuration (a dataclass or a dict) as config.json."""
        data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
        self.path(self.CONFIG).write_text(json.dumps(data, indent=2) + "\n")

    @staticmethod
    def read_config(out: str | Path) -> dict:
        """The config.json of the run folder ``out``; a CheckpointError if there is none."""
        path = Path(out) / Run.CONFIG
        if not path.is_file():
            raise CheckpointError(f"no {path}")
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise CheckpointError(f"cannot read {path}: {err}") from None

    # ---------------------------------------------------------------- checkpoint / resume
    def save_checkpoint(self, state: dict) -> None:
        """Write checkpoint.pt atomically, the rows so far under ``rows_key``."""
        save_atomic({**state, self.rows_key: self.rows}, self.path(self.CHECKPOINT))

    def load_checkpoint(self) -> dict:
        """The state saved by :meth:`save_checkpoint`; the progress rows are restored from it."""
        state = load_checkpoint(self.path(self.CHECKPOINT))
        self.rows = list(state.get(self.rows_key, []))
        return state

    # ---------------------------------------------------------------- progress and results
    def record(self, row: dict) -> dict:
        """Append one progress row (written to progress.csv by :meth:`write_progress`, and at once
        to TensorBoard's event file in ``tb/``: each numeric column a scalar against ``step``)."""
        self.rows.append(row)
        if self._tb is None:
            from .tb_logger import TBLogger
            self._tb = TBLogger(self.path("tb"))
        step = row.get("step", row.get("env_steps", len(self.rows)))
        self._tb.scalars({k: v for k, v in row.items() if k != "step"}, int(step), prefix="progress")
        self._tb.flush()
        return row

    def write_progress(self) -> None:
        """progress.csv: the rows so far, the columns the union of their keys (none: no file)."""
        if not self.rows:
            return
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.path(self.PROGRESS), "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(self.rows)

    def write_metrics(self, metrics: dict) -> None:
        """metrics.json."""
        self.path(self.METRICS).write_text(json.dumps(metrics, indent=2) + "\n")

    def plot(self, draw, name: str, *args, **kw) -> Path | None:
        """``draw(self.rows, path, *args, **kw)`` into the file ``name``; a failure is a warning."""
        try:
            return draw(self.rows, self.path(name), *args, **kw)
        except Exception as err:  # a plot is never worth losing a run for
            log(f"warning: could not plot {name}: {err}")
            return None

    def finish(self, metrics: dict, plot=None, plot_name: str = "progress.png", **plot_kw) -> dict:
        """Write progress.csv, metrics.json and (``plot`` given) the progress plot; returns
        ``metrics``."""
        self.write_progress()
        self.write_metrics(metrics)
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if plot is not None:
            self.plot(plot, plot_name, **plot_kw)
        return metrics


def plot_progress(rows: list[dict], path, title: str = "", loss_label: str = "training loss",
                  prefix: str = "e_", ylabel: str = "mean e", reference: tuple | None = (0.005, "e = 0.005")):
    """Two panels against ``step``: the loss (log scale), and every ``prefix*`` column of the rows
    as "validation NAME" (log scale) with a dotted ``reference`` line (value, label)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    steps = [r["step"] for r in rows]
    ax1.plot(steps, [r["loss"] for r in rows], label=loss_label)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for key in [k for k in rows[0] if k.startswith(prefix)]:
        ax2.plot(steps, [r.get(key, float("nan")) for r in rows], label=f"validation {key[len(prefix):]}")
    if reference is not None:
        ax2.axhline(reference[0], color="k", ls=":", lw=1, label=reference[1])
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel(ylabel)
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
