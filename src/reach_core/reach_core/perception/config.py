"""Perception configuration: the network's architecture and the training run's settings.

:class:`ArchConfig` is what a checkpoint records to rebuild the network; :class:`TrainConfig`
is one flat record of a training (or adaptation) run, saved as the run folder's
``config.json`` and in the model's metadata (its field names are therefore a file format: the
shipped models and old run folders are read back through them).  Both check their values when
made, so a bad setting fails before any data is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..scene import DEFAULT_CAMERA

NET_SIZE = DEFAULT_CAMERA.net_size
SIM_TEST_SEED = 400_2017     # the benchmark's simulator test images (never used in training)
SIM_VAL_SEED = 300_2017      # validation images seen during training
ADAPT_PARTS = ("all", "features", "early")
ARCH_FIELDS = ("arch", "width", "batchnorm", "fc_hidden", "keypoints")
FRACTIONS = ("real_clutter", "background_swap", "distractors", "near_target", "realism",
             "unlabelled_fraction")


@dataclass
class ArchConfig:
    """The perception network's architecture (:class:`reach_core.perception.PerceptionNet`)."""

    arch: str = "paper"          # "paper" or "spatial"
    width: float = 1.0           # channel multiplier
    batchnorm: bool = False
    fc_hidden: int = 0           # paper: hidden FC units before the bottleneck (0: none)
    keypoints: int = 32          # spatial: number of keypoints

    def __post_init__(self):
        if self.arch not in ("paper", "spatial"):
            raise ValueError(f"arch must be 'paper' or 'spatial', got {self.arch!r}")
        if self.width <= 0 or self.fc_hidden < 0 or self.keypoints < 1:
            raise ValueError(f"bad architecture sizes: {self}")


@dataclass
class AugmentConfig:
    """The paper's image augmentations (:func:`reach_core.perception.augment`)."""

    rotation: float = 0.0         # degrees, uniform in +-rotation
    translation: float = 0.0      # pixels of the 84 x 84 image, uniform in +-translation
    noise: float = 0.0            # std of additive Gaussian noise (image in [0, 1])
    brightness: float = 0.0       # additive brightness and relative contrast, uniform in +-


@dataclass
class TrainConfig:
    """One perception training run (``reach train perception``): architecture, schedule,
    simulator data, adaptation, augmentation, regularisation and monitoring."""

    out: str = "runs/perception"
    arch: str = "paper"
    width: float = 1.0
    batchnorm: bool = False
    fc_hidden: int = 0
    keypoints: int = 32
    steps: int = 20000
    time_budget: float = 0.0      # seconds of training; if set, the LR schedule follows time and
                                  # training stops at the budget (or at ``steps``)
    batch: int = 256
    lr: float = 1e-3
    lr_final_fraction: float = 0.01
    warmup: int = 200
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    # simulator data: rendered in memory (sim_images, supersample) or a dataset folder (sim)
    sim_images: int = 100_000
    sim: str | None = None
    sim_limit: int | None = None  # use only the first sim_limit images of the ``sim`` folder
    supersample: int = 5
    workers: int = 1
    # adaptation
    adapt_from: str | None = None
    real: str | None = None
    real_fraction: float = 0.75
    virtual_targets: int = 1
    # augmentation (applied to real images; to simulator images too with augment_sim)
    rotation: float = 0.0         # degrees, uniform in +-rotation
    translation: float = 0.0      # pixels of the 84 x 84 image, uniform in +-translation
    noise: float = 0.0            # std of additive Gaussian noise (image in [0, 1])
    brightness: float = 0.0       # additive brightness and relative contrast, uniform in +-
    augment_sim: bool = False
    # regularisation of an adaptation with few real frames
    real_clutter: float = 0.0     # fraction of real images given random boxes pasted around the
                                  # robot (its pixels known from the labels: robot_mask)
    l2sp: float = 0.0             # weight of ||theta - theta_start||^2 (L2-SP, Li et al. 2018)
    adapt_part: str = "all"       # the layers trained: all; features (the head, features -> Omega,
                                  # frozen); early (the convolutions before the last feature layer)
    near_target: float = 0.0      # share of --online scenes and of virtual targets with the target
                                  # at the hand, as every reach ends (renderer.near_targets)
    clutter_margin: int = 2       # px around the robot (as drawn from the labels) that pasted
                                  # clutter keeps clear of and a background swap carries over
                                  # (the hifi camera moves by a few px)
    background_swap: float = 0.0  # share of real images whose robot and target are shown over the
                                  # background of another real frame (swap_backgrounds)
    distractors: float = 0.0      # share of randomised --online scenes and of clutter-pasted real
                                  # images also given bars at any angle behind the robot
                                  # (randomized_renderer.draw_bars)
    # domain randomisation of simulator images: this fraction of them gets a random background
    # (grey level, smooth shading, clutter rectangles, floor band), random body greys, contrast,
    # gamma and noise, so that SIM features do not rely on the simulator's plain look
    randomize: float = 0.0
    # online: no fixed simulator set; simulator images are scenes rendered on the training device
    # (reach_core.randomized_renderer, ``supersample`` samples per pixel) into a pool that fresh
    # scenes keep renewing, and ``randomize`` is the share of them given a random look
    online: bool = False
    online_pool: int = 65536      # images kept on the device (randomized_renderer.ScenePool)
    online_refresh: float = 32.0  # fresh images per step replacing the pool's oldest
    realism: float = 0.0          # share of randomised --online scenes given a real robot's look
                                  # (randomized_renderer.RealLook: a hand-placed webcam, a dark
                                  # robot, posters and lights, physical targets)
    # the real camera: frames of --real, --val-real and --unlabelled are resampled into the
    # virtual camera's through this camera file (reach calibrate) before anything else
    camera: str | None = None
    # unlabelled real frames (a folder of images, labels not needed): a mean-teacher consistency
    # loss, the prediction on an augmented frame pulled towards an averaged network's prediction
    # on the plain frame, so that the adaptation also fits frames it has no labels for
    unlabelled: str | None = None
    unlabelled_fraction: float = 0.25   # share of each batch's size added as unlabelled frames
    unlabelled_weight: float = 1.0      # weight of the consistency loss against Eq. 2
    teacher_decay: float = 0.99         # exponential moving average of the teacher's weights
    # monitoring
    val_sim: int = 1000
    val_real: str | None = None
    eval_every: int = 1000
    checkpoint_every: int = 2000
    target_e: float = 0.005
    command: str = ""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError, naming the flag, for a setting out of its range."""
        for name in FRACTIONS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} is a fraction in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.clutter_margin <= 10:
            raise ValueError(f"--clutter-margin is 0..10 pixels, got {self.clutter_margin}")
        if not self.l2sp >= 0.0:
            raise ValueError(f"--l2sp must be >= 0, got {self.l2sp}")
        if self.adapt_part not in ADAPT_PARTS:
            raise ValueError(f"--adapt-part is one of {', '.join(ADAPT_PARTS)}, got {self.adapt_part!r}")
        if self.real and not self.adapt_from:
            raise ValueError("--real needs --adapt-from (a trained SIM network to adapt)")
        if self.unlabelled and not self.adapt_from:
            raise ValueError("--unlabelled needs --adapt-from (a trained SIM network to adapt)")
        if not (0.0 <= self.unlabelled_weight <= 100.0 and 0.0 <= self.teacher_decay < 1.0):
            raise ValueError(f"--unlabelled-weight is 0..100 and --teacher-decay in [0, 1), got "
                             f"{self.unlabelled_weight}, {self.teacher_decay}")
        self.arch_config()

    def arch_config(self) -> ArchConfig:
        """The architecture these settings build (validated by :class:`ArchConfig`)."""
        return ArchConfig(self.arch, self.width, self.batchnorm, self.fc_hidden, self.keypoints)

    def augment_config(self) -> AugmentConfig:
        """The augmentation settings (:func:`reach_core.perception.augment`)."""
        return AugmentConfig(self.rotation, self.translation, self.noise, self.brightness)
