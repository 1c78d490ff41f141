"""Perception configuration: the network's architecture and the training run's settings.

:class:`ArchConfig` is what a checkpoint records to rebuild the network; :class:`TrainConfig`
is one flat record of a training (or adaptation) run, saved as the run folder's
``config.json`` and in the model's metadata (its field names are therefore a file format: the
shipped models and old run folders are read back through them).  Both check their values when
made, so a bad setting fails before any data is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..configs import option
from ..scene import DEFAULT_CAMERA

NET_SIZE = DEFAULT_CAMERA.net_size
SIM_TEST_SEED = 400_2017     # the benchmark's simulator test images (never used in training)
SIM_VAL_SEED = 300_2017      # validation images seen during training
ADAPT_PARTS = ("all", "features", "early")
PRECISIONS = ("fp32", "bf16")
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
    simulator data, adaptation, augmentation, regularisation and monitoring.  Each field's help
    is its ``reach train perception`` flag's (:mod:`reach_core.configs`)."""

    out: str = option("runs/perception", "run folder")
    arch: str = option("paper", "paper: 3 conv + 1 FC; spatial: spatial-softmax keypoints variant",
                       choices=("paper", "spatial"))
    width: float = option(1.0, "channel multiplier")
    batchnorm: bool = option(False, "batch normalisation after each conv")
    fc_hidden: int = option(0, "hidden FC units before the bottleneck")
    keypoints: int = option(32, "spatial: keypoints")
    steps: int = option(20000, "update steps")
    time_budget: float = option(0.0, "training seconds: the cosine LR follows time and training stops "
                                     "there (or at --steps); 0: no budget")
    batch: int = option(256, "mini-batch size")
    lr: float = option(1e-3, "Adam learning rate, cosine-decayed")
    lr_final_fraction: float = option(0.01, "final LR / initial LR")
    warmup: int = option(200, "linear warm-up steps")
    weight_decay: float = option(0.0, "Adam weight decay")
    seed: int = option(0, "seed of scenes, initialisation and batches")
    tool: str = option("paper", "tool point the gripper is drawn to and targets are drawn for: paper "
                                "(0.28 m from w1, the shipped models'), electric_gripper_fingertips "
                                "(0.3907 m) or metres; datasets of another tool are refused "
                                "(docs/tool_point.md)", metavar="TOOL")
    device: str = option("cpu", "cpu, cuda, cuda:1, ...")
    # simulator data: rendered in memory (sim_images, supersample) or a dataset folder (sim)
    sim_images: int = option(100_000, "simulator images rendered in memory")
    sim: str | None = option(None, "use this simulator dataset folder instead of rendering")
    sim_limit: int | None = option(None, "use only the first N images of --sim")
    supersample: int = option(5, "renderer supersampling of in-memory and --online images (5: the camera "
                                 "pipeline's pixels; 2 is close enough with --online and 2.8x cheaper)")
    workers: int = option(1, "rendering processes")
    # adaptation
    adapt_from: str | None = option(None, "perception checkpoint to start from: adapted with --real "
                                          "(P25-P100), or trained on simulator images alone (a SIM run "
                                          "continued); a combined end-to-end checkpoint gives its perception")
    real: str | None = option(None, "dataset folder of real (or higher-fidelity) images")
    real_fraction: float = option(0.75, "fraction of real images per batch")
    virtual_targets: int = option(1, "uses of each real frame with a random virtual target (datasets "
                                     "with target: virtual)")
    # augmentation (applied to real images; to simulator images too with augment_sim)
    rotation: float = option(0.0, "augmentation: rotation, +- degrees")
    translation: float = option(0.0, "augmentation: translation, +- 84x84 pixels")
    noise: float = option(0.0, "augmentation: Gaussian noise std (image in [0, 1])")
    brightness: float = option(0.0, "augmentation: brightness/contrast, +-")
    augment_sim: bool = option(False, "augment simulator images too")
    # regularisation of an adaptation with few real frames
    real_clutter: float = option(0.0, "adaptation: fraction of real images given random boxes pasted "
                                      "around the robot (whose pixels the labels give), so that few "
                                      "frames are not memorised by background")
    l2sp: float = option(0.0, "adaptation: weight of the squared distance to the starting weights (L2-SP, "
                              "Li et al. 2018)")
    adapt_part: str = option("all", "layers trained: all; features (the head from features to Omega "
                                    "frozen); early (only the convolutions before the last feature layer)",
                             choices=ADAPT_PARTS)
    near_target: float = option(0.0, "share of --online simulator scenes and of virtual targets with the "
                                     "target disc at the hand, as every reach ends (renderer.near_targets)")
    clutter_margin: int = option(2, "adaptation: pixels around the robot (drawn from the labels) that "
                                    "--real-clutter keeps clear of and --background-swap carries over (the "
                                    "hifi domain's clutter that touches the arm costs it most)")
    background_swap: float = option(0.0, "adaptation: fraction of real images whose robot and target "
                                         "(pixels the labels give) are shown over another real frame's "
                                         "background, its own robot filled in (swap_backgrounds)")
    distractors: float = option(0.0, "share of randomised --online simulator scenes (and of --real-clutter "
                                     "images) also given bars at any angle behind the robot, like the hifi "
                                     "domain's background boxes")
    # domain randomisation of simulator images
    randomize: float = option(0.0, "domain randomisation: fraction of simulator images given a random "
                                   "background, body greys, contrast, gamma and noise")
    # online: simulator images are scenes rendered on the training device into a renewed pool
    online: bool = option(False, "simulator scenes rendered on --device as training goes (no fixed set; "
                                 "reach_core.randomized_renderer: a pool renewed every step); --randomize "
                                 "is then the share given a random look (camera pose, background, clutter, "
                                 "robot greys and widths, shading, blur, noise)")
    online_pool: int = option(65536, "--online: images kept on the device")
    online_refresh: float = option(32.0, "--online: fresh images per step replacing the oldest")
    online_chunk: int = option(2048, "--online: scenes rendered at once when the pool is renewed (a render "
                                     "costs about the same launches for any chunk: larger is cheaper per "
                                     "image on a GPU, and needs chunk x supersample^2 x 28 kB of memory)")
    realism: float = option(0.0, "--online: share of randomised scenes given a real robot's look: a "
                                 "hand-placed webcam (keystone, lens distortion), a dark robot, posters "
                                 "and lights, physical targets (randomized_renderer.RealLook)")
    # the real camera: frames of --real, --val-real and --unlabelled are resampled into the
    # virtual camera's through this camera file (reach calibrate) before anything else
    camera: str | None = option(None, "camera file (reach calibrate) of the camera that took --real, "
                                      "--val-real and --unlabelled: their frames are resampled into the "
                                      "virtual camera's first")
    # unlabelled real frames: a mean-teacher consistency loss (perception.train.consistency_loss)
    unlabelled: str | None = option(None, "folder of real frames without labels (images, or a dataset): "
                                          "adapted to with a mean-teacher consistency loss beside Eq. 2")
    unlabelled_fraction: float = option(0.25, "unlabelled frames added to each batch, as a share of --batch")
    unlabelled_weight: float = option(1.0, "weight of the consistency loss against Eq. 2")
    teacher_decay: float = option(0.99, "EMA decay of the teacher's weights")
    # speed (each measured by bench/bench_perception_speed.py; none changes what is learnt beyond
    # rounding: bf16 autocast keeps the weights, the loss and Adam in float32)
    precision: str = option("fp32", "fp32, or bf16: the convolutions (forward and backward) under bfloat16 "
                                    "autocast (keypoints, head, loss and Adam stay float32)",
                            choices=PRECISIONS)
    channels_last: bool = option(False, "the convolutions in channels-last (NHWC) memory layout, "
                                        "which tensor-core GPUs' convolution kernels prefer")
    compile: bool = option(False, "torch.compile the network for training (a one-off compilation of "
                                  "tens of seconds, counted in the training time)")
    loss_delta: float = option(0.0, "0: Eq. 2 (half the squared error norm); > 0: the pseudo-Huber loss of "
                                    "the error norm with this delta (squared below it, linear above, as "
                                    "the reported e weighs errors)")
    ema: float = option(0.0, "decay of an exponential moving average of the weights (and batch-norm "
                             "statistics), validated and saved instead of the last weights; 0: off")
    cuda_graph: bool = option(False, "the SIM stage's step (online scenes alone, one GPU) replayed as one "
                                     "CUDA graph after 3 eager steps (perception.cuda_graph)")
    # monitoring
    val_sim: int = option(1000, "simulator validation images")
    val_real: str | None = option(None, "dataset folder monitored during training (not used to select)")
    eval_every: int = option(1000, "steps between validations")
    checkpoint_every: int = option(2000, "steps between checkpoints")
    target_e: float = option(0.005, "record when the simulator validation e first reaches this")
    command: str = ""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError, naming the flag, for a setting out of its range."""
        for name in FRACTIONS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} is a fraction in [0, 1], "
                                 f"got {getattr(self, name)}")
        if not 0 <= self.clutter_margin <= 10:
            raise ValueError(f"--clutter-margin is 0..10 pixels, got {self.clutter_margin}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"--ema is a decay in [0, 1), got {self.ema}")
        if self.online_chunk < 1:
            raise ValueError(f"--online-chunk must be positive, got {self.online_chunk}")
        if not self.loss_delta >= 0.0:
            raise ValueError(f"--loss-delta must be >= 0, got {self.loss_delta}")
        if not self.l2sp >= 0.0:
            raise ValueError(f"--l2sp must be >= 0, got {self.l2sp}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision is one of {', '.join(PRECISIONS)}, got {self.precision!r}")
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
        from ..kinematics import parse_tool
        self.tool = parse_tool(self.tool).name

    def arch_config(self) -> ArchConfig:
        """The architecture these settings build (validated by :class:`ArchConfig`)."""
        return ArchConfig(self.arch, self.width, self.batchnorm, self.fc_hidden, self.keypoints)

    def augment_config(self) -> AugmentConfig:
        """The augmentation settings (:func:`reach_core.perception.augment`)."""
        return AugmentConfig(self.rotation, self.translation, self.noise, self.brightness)
