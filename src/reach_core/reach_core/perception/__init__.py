"""The perception module (paper sections 3.1, 4 "Network architecture" and 5.1): image -> Omega.

The network maps an 84 x 84 grey image in [0, 1] (:func:`reach_core.renderer.preprocess`) to the
5-D scene configuration Omega = [target x, target y, s1, e1, w1] normalised to [0, 1], the
bottleneck shared with the control module.

Architectures (``arch``):

* ``"paper"``: 3 convolutional layers and 1 fully connected layer whose output is the bottleneck
  (the paper's Figure 1C).  The paper gives no layer sizes; we use those of the DQN it builds on
  (32 8x8/4, 64 4x4/2, 64 3x3/1, ReLU) and a linear FC 3136 -> 5.  Options: ``width`` (channel
  multiplier), ``batchnorm``, and ``fc_hidden`` (a hidden FC layer before the bottleneck).
* ``"spatial"``: a variant with spatial-softmax keypoints (Levine et al. 2016): three 3x3/5x5
  convolutions that keep a 42 x 42 map, a soft-argmax per channel giving K (x, y) keypoints, and
  an MLP from the keypoints to Omega.

The paper initialised the first convolution from ImageNet (GoogLeNet) weights; no such weights
can be downloaded here, so every layer starts from PyTorch's default random initialisation.

Training minimises the paper's quadratic loss (Eq. 2) with Adam and a cosine learning rate.  SIM
networks train from scratch on simulator images; adapted networks (P25-P100) start from a SIM
checkpoint and draw ``real_fraction`` of every mini-batch from a "real" dataset (here the
higher-fidelity MuJoCo domain, or robot images) and the rest from simulator images, with the
paper's augmentations (rotation, translation, noise, brightness) as options.  Regularisers for
adaptations with few real frames (a few hundred frames are otherwise memorised): clutter pasted
around the robot in real frames (``real_clutter``, :func:`paste_clutter`), each frame's robot
shown over another frame's background (``background_swap``, :func:`swap_backgrounds`), L2-SP, a
pull towards the starting weights (``l2sp``), and training only part of the network
(``adapt_part``, :func:`trainable_parameters`).  ``near_target`` puts a share of the scenes'
targets at the hand (:func:`reach_core.renderer.near_targets`), the frames that end every reach.

A checkpoint is a dictionary saved with ``torch.save`` (format ``reach.perception/1``) holding the
architecture, the weights and metadata; ``PerceptionModel.load(path)`` rebuilds it
(:mod:`reach_core.checkpoints`).

The package, by role:

=============== ================================================================================
config.py       ArchConfig, AugmentConfig, TrainConfig (and their validation), seeds
model.py        PerceptionNet, PerceptionModel (save/load), test-time augmentation
augment.py      augment, randomize_background, robot_mask, paste_clutter, swap_backgrounds
train.py        the training loop (train) and its steps
evaluate.py     perception_errors, evaluate_model, print_table, plot_errors (Table 1, Figure 4)
cli.py          ``reach train perception`` and ``reach eval perception``
=============== ================================================================================

Everything public is importable from ``reach_core.perception`` itself.
"""
from ..runs import plot_progress
from .augment import _luma, augment, paste_clutter, randomize_background, robot_mask, swap_backgrounds
from .cli import add_eval_cli, add_train_cli
from .config import (ADAPT_PARTS, NET_SIZE, SIM_TEST_SEED, SIM_VAL_SEED, ArchConfig, AugmentConfig,
                     TrainConfig)
from .evaluate import PAPER_TABLE1, evaluate_model, perception_errors, plot_errors, print_table
from .model import (CHECKPOINT_FORMAT, DEPLOY_TTA_PATTERN, TTA_PATTERNS, PerceptionCheckpointError,
                    PerceptionModel, PerceptionNet, SpatialSoftmax, check_tta, check_tta_pattern,
                    predict_batched, predict_shifted, square_shifts, trained_with_shifts, tta_for,
                    tta_shifts)
from .train import lr_at, perception_loss, train, trainable_parameters
from ..scene import DEFAULT_CAMERA

__all__ = [
    "ADAPT_PARTS", "CHECKPOINT_FORMAT", "DEFAULT_CAMERA", "DEPLOY_TTA_PATTERN", "NET_SIZE", "PAPER_TABLE1",
    "SIM_TEST_SEED", "SIM_VAL_SEED", "TTA_PATTERNS", "ArchConfig", "AugmentConfig",
    "PerceptionCheckpointError", "PerceptionModel", "PerceptionNet", "SpatialSoftmax", "TrainConfig",
    "_luma", "add_eval_cli", "add_train_cli", "augment", "check_tta", "check_tta_pattern",
    "evaluate_model", "lr_at", "paste_clutter", "perception_errors", "perception_loss", "plot_errors",
    "plot_progress", "predict_batched", "predict_shifted", "print_table", "randomize_background",
    "robot_mask", "square_shifts", "swap_backgrounds", "train", "trainable_parameters",
    "trained_with_shifts", "tta_for", "tta_shifts",
]
