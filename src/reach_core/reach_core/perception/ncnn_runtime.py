"""The perception network run by ncnn on the CPU: the perception node's fast path.

With the closed loop's test-time augmentation (``tta`` 1: the network runs on 9 shifted copies of
the 84 x 84 image) the shipped ``spatial`` network costs about 0.9 GFLOP a frame, almost all of it
in the three 3 x 3 convolutions at 42 x 42.  torch and ONNX Runtime compute those directly and
already run near one core's fp32 peak (about 9 ms a frame); ncnn (Tencent's CPU inference
library, ``pip install ncnn``) computes them with Winograd transforms, several times fewer
multiplications in fp32, and its 42 x 42 x 32 maps stay in the core's cache.  The outputs match
torch's to about 1e-5 (tests/test_perception_ncnn.py; ``bench/bench_inference.py`` prints the
largest difference).

:func:`ncnn_graph` translates a :class:`PerceptionNet` (either architecture; batch norm folded
into its convolution) into ncnn's text graph and weight file, in memory, from the checkpoint's
own weights: nothing is exported or shipped.  :class:`NcnnPerception` runs it with the same
``predict``, ``tta`` and ``tta_pattern`` as :class:`PerceptionModel`: the copies are shifted as
:func:`predict_shifted` does (``torch.roll``), each copy is one single-threaded ncnn run (with
``threads`` > 1 the copies are split over that many Python threads, each with its own ncnn net:
ncnn releases the GIL, and unlike ncnn's own OpenMP threads they meet once a frame, not at every
layer, so they do not stall while other processes hold the cores), and the estimate is the
median over the copies with each target estimate moved back by its shift.
"""
from __future__ import annotations

import os
import struct
import tempfile

import numpy as np
from torch import nn

from ..scene import DEFAULT_CAMERA
from .config import NET_SIZE
from .model import (PerceptionModel, SpatialSoftmax, check_tta, check_tta_pattern, network_images,
                    shift_offsets, tta_shifts)

INPUT, OUTPUT = "in0", "out0"


class NcnnUnavailable(RuntimeError):
    """ncnn is not installed, or the network has a layer this translation does not know."""


def _floats(array) -> bytes:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32)).tobytes()


class _Graph:
    """ncnn's text graph (``.param``) and weights (``.bin``) written layer by layer."""

    def __init__(self):
        self.lines, self.blobs, self.weights = [], 0, bytearray()
        self.top = INPUT
        self.add("Input", [], "")

    def add(self, kind: str, inputs: list[str], params: str, out: str | None = None) -> str:
        """Append a layer reading ``inputs`` (default: the last output); returns its output."""
        out = out or f"b{len(self.lines)}"
        if kind == "Input":
            out = INPUT
        blobs = " ".join(inputs + [out])
        self.lines.append(f"{kind} l{len(self.lines)} {len(inputs)} 1 {blobs} {params}".rstrip())
        self.blobs += 1
        self.top = out
        return out

    def weight(self, array):
        """A weight array as ncnn's loader reads it: a 4-byte tag 0 (raw float32), the values."""
        self.weights += struct.pack("<I", 0) + _floats(array)

    def raw(self, array):
        """A bias (no tag)."""
        self.weights += _floats(array)

    def text(self) -> str:
        """The ``.param`` file."""
        return f"7767517\n{len(self.lines)} {self.blobs}\n" + "\n".join(self.lines) + "\n"


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, scale: float = 1.0):
    """The convolution's weight and bias (float64), eval-mode batch norm folded in, times ``scale``."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else w.new_zeros(w.shape[0])
    if bn is not None:   # eval-mode batch norm folded into the convolution
        gain = bn.weight.detach().double() / (bn.running_var.double() + bn.eps).sqrt()
        w = w * gain[:, None, None, None]
        b = (b - bn.running_mean.double()) * gain + bn.bias.detach().double()
    return w * scale, b * scale


def polyphase(conv: nn.Conv2d, size: int = NET_SIZE) -> tuple[int, int] | None:
    """(stride s, padding p) when the first convolution (one input channel, stride s > 1) is run
    as a stride-1 convolution over the s x s phases of the zero-padded image (space to depth,
    kernel ceil(k / s)): the same sums, and ncnn's fast stride-1 kernels.  None when the sizes do
    not allow it exactly."""
    (k, k2), (s, s2), (p, p2) = conv.kernel_size, conv.stride, conv.padding
    if conv.in_channels != 1 or s < 2 or (k, s, p) != (k2, s2, p2) or (size + 2 * p) % s:
        return None
    if (size + 2 * p) // s - -(-k // s) + 1 != (size + 2 * p - k) // s + 1:
        return None
    return s, p


def _phase_weight(w, s: int):
    """(O, 1, k, k) -> (O, s*s, ceil(k/s), ceil(k/s)): tap (s u + a, s v + b) of phase (a, b)."""
    o, _, k, _ = w.shape
    kp = -(-k // s)
    out = w.new_zeros(o, s * s, kp, kp)
    for a in range(s):
        for b in range(s):
            taps = w[:, 0, a::s, b::s]
            out[:, a * s + b, :taps.shape[1], :taps.shape[2]] = taps
    return out


def _conv(g: _Graph, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, relu: bool, scale: float = 1.0,
          phases: int = 0):
    """A convolution layer; ``phases`` s > 0: the polyphase form of the first one."""
    w, b = _folded(conv, bn, scale)
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise NcnnUnavailable(f"unsupported convolution {conv}")
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    if phases:
        w = _phase_weight(w, phases)
        kh = kw = w.shape[-1]
        sh = sw = 1
        ph = pw = 0
    g.add("Convolution", [g.top], f"0={w.shape[0]} 1={kw} 11={kh} 3={sw} 13={sh} 4={pw} 14={ph} "
          f"5=1 6={w.numel()} 9={int(relu)}")
    g.weight(w.numpy())
    g.raw(b.numpy())


def _spatial_softmax(g: _Graph, layer: SpatialSoftmax, channels: int):
    """Soft-argmax keypoints; the division by the temperature is folded into the convolution
    before (:func:`ncnn_graph`)."""
    hw = layer.grid.shape[0]
    g.add("Reshape", [g.top], f"0={hw} 1={channels}")
    g.add("Softmax", [g.top], "0=1 1=1")
    g.add("Gemm", [g.top], f"2=0 3=1 4=0 5=1 6=1 7={channels} 8=2 9={hw} 10=-1")
    g.weight(layer.grid.detach().numpy().T)                            # (2, H*W), transposed B
    g.add("Reshape", [g.top], f"0={2 * channels}")


def _linear(g: _Graph, layer: nn.Linear, relu: bool):
    g.add("InnerProduct", [g.top], f"0={layer.out_features} 1=1 2={layer.weight.numel()} 9={int(relu)}")
    g.weight(layer.weight.detach().numpy())
    g.raw(layer.bias.detach().numpy())


def ncnn_graph(net) -> tuple[str, bytes, tuple[int, int] | None]:
    """(``.param`` text, ``.bin`` weights, input layout) of ``net``'s forward on one image that is
    already scaled as ``PerceptionNet.forward`` scales it ((x - 0.5) * 4); the output blob is
    ``out0``, the 5 values.  The layout is None for the (1, 84, 84) image, or (s, p) for the s x s
    phases of the image zero-padded by p (:func:`polyphase`), (s*s, (84 + 2p) / s, ...).
    NcnnUnavailable for a layer it does not know."""
    g = _Graph()
    head = net.head if isinstance(net.head, nn.Sequential) else [net.head]
    layers = list(net.features) + list(head)
    channels, layout = 1, None
    for i, layer in enumerate(layers):
        nxt = layers[i + 1:i + 3]
        bn = nxt[0] if nxt and isinstance(nxt[0], nn.BatchNorm2d) else None
        follow = nxt[1:] if bn is not None else nxt[:1]
        relu = bool(follow) and isinstance(follow[0], nn.ReLU)
        if isinstance(layer, nn.Conv2d):
            soft = follow and isinstance(follow[0], SpatialSoftmax)
            scale = 1.0 / float(follow[0].log_temperature.detach().exp()) if soft else 1.0
            phases = polyphase(layer) if i == 0 else None
            _conv(g, layer, bn, relu, scale, phases[0] if phases else 0)
            channels, layout = layer.out_channels, layout or phases
        elif isinstance(layer, SpatialSoftmax):
            _spatial_softmax(g, layer, channels)
        elif isinstance(layer, nn.Flatten):
            g.add("Flatten", [g.top], "")
        elif isinstance(layer, nn.Linear):
            _linear(g, layer, relu)
        elif not isinstance(layer, (nn.ReLU, nn.BatchNorm2d)):
            raise NcnnUnavailable(f"no ncnn translation for {type(layer).__name__}")
    last = g.lines[-1].split()
    last[5] = OUTPUT                     # name the last layer's output blob
    g.lines[-1] = " ".join(last)
    return g.text(), bytes(g.weights), layout


def load_net(param: str, weights: bytes, threads: int = 1, **opts):
    """(the ncnn module, an ncnn net of the text graph ``param`` and its ``weights``): fp32
    throughout on ``threads`` threads, then any ncnn option of ``opts`` (the benchmarks' variants)."""
    try:
        import ncnn
    except ImportError as err:
        raise NcnnUnavailable(f"ncnn is not installed ({err})") from None
    net = ncnn.Net()
    net.opt.num_threads = threads        # 1: parallel over the copies instead (NcnnPerception)
    for flag in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage",
                 "use_int8_inference"):
        setattr(net.opt, flag, False)    # fp32 throughout: the same numbers as torch
    for key, value in opts.items():
        setattr(net.opt, key, value)
    with tempfile.TemporaryDirectory() as tmp:   # ncnn copies the weights it reads from a file
        with open(os.path.join(tmp, "net.param"), "w") as f:
            f.write(param)
        with open(os.path.join(tmp, "net.bin"), "wb") as f:
            f.write(weights)
        if net.load_param(os.path.join(tmp, "net.param")) or net.load_model(os.path.join(tmp, "net.bin")):
            raise NcnnUnavailable("ncnn refused the translated network")
    return ncnn, net


def shifted_inputs(shifts, layout: tuple[int, int] | None, size: int = NET_SIZE) -> np.ndarray:
    """Indices into an image's flattened pixels plus one trailing zero (index size * size) that
    gather, in one ``np.take``, the network inputs of the copies shifted by each (dy, dx) of
    ``shifts`` (:func:`tta_shifts`): (copies, 1, size, size), or with ``layout`` (s, p) the s x s
    phases of each copy zero-padded by p (copies, s*s, (size + 2p) / s, (size + 2p) / s).  Copies
    are shifted as ``torch.roll``: copy (dy, dx) has pixel (i, j) = image[(i - dy) % size,
    (j - dx) % size]."""
    s, p = layout or (1, 0)
    n = (size + 2 * p) // s
    out = np.empty((len(shifts), s * s, n, n), dtype=np.intp)
    grid = np.arange(n) * s
    for c, (dy, dx) in enumerate(shifts):
        for a in range(s):
            for b in range(s):
                rows, cols = grid + a - p, grid + b - p               # in the rolled copy
                inside = ((rows >= 0) & (rows < size))[:, None] & ((cols >= 0) & (cols < size))[None]
                src = ((rows - dy) % size)[:, None] * size + ((cols - dx) % size)[None]
                out[c, a * s + b] = np.where(inside, src, size * size)
    return out


class NcnnPerception:
    """A :class:`PerceptionModel` run by ncnn: ``predict(images)``, ``tta`` and ``tta_pattern``
    as the model's.  One caller at a time (the node's callback): a call reuses the object's input
    buffer."""

    def __init__(self, model: PerceptionModel, threads: int = 1, camera=DEFAULT_CAMERA):
        self.model, self.meta = model, model.meta
        param, weights, self._layout = ncnn_graph(model.net)
        self.threads = max(1, int(threads))
        # one ncnn net a thread: threads that share one net wait for each other (its allocators)
        loaded = [load_net(param, weights) for _ in range(self.threads)]
        self._ncnn, self._nets = loaded[0][0], [net for _, net in loaded]
        self._pool = None
        if self.threads > 1:   # ncnn releases the GIL while it runs: copies run side by side
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="ncnn")
        self._camera = camera
        self._flat = np.zeros(NET_SIZE * NET_SIZE + 1, dtype=np.float32)   # image, then a zero
        self._tta, self._pattern = check_tta(model.tta), check_tta_pattern(model.tta_pattern)
        self._shift_views()

    @property
    def tool(self) -> str:
        """The tool point the network was trained for (its checkpoint's)."""
        return self.model.tool

    @property
    def tta(self) -> int:
        """The test-time augmentation radius (0..3, 0: off)."""
        return self._tta

    @tta.setter
    def tta(self, radius):
        self._tta = check_tta(radius)
        self._shift_views()

    @property
    def tta_pattern(self) -> str:
        """The pattern of the shifts (:func:`tta_shifts`: ``square``, ``cross`` or ``ring``)."""
        return self._pattern

    @tta_pattern.setter
    def tta_pattern(self, pattern):
        self._pattern = check_tta_pattern(pattern)
        self._shift_views()

    def _shift_views(self):
        """The gather indices and moved-back offsets of the copies of ``tta`` and ``tta_pattern``."""
        shifts = tta_shifts(self._tta, self._pattern)
        self._gather = shifted_inputs(shifts, self._layout)
        self._back = shift_offsets(shifts, self._camera)

    def _run(self, image: np.ndarray, worker: int = 0) -> np.ndarray:
        """The network's 5 outputs for one network input (C, H, W) float32, C-contiguous, on
        thread ``worker``'s net."""
        ex = self._nets[worker].create_extractor()
        ex.input(INPUT, self._ncnn.Mat(image))
        ret, out = ex.extract(OUTPUT)
        if ret != 0:
            raise RuntimeError(f"ncnn failed on the perception network (code {ret})")
        return np.array(out, dtype=np.float32).reshape(-1)

    def _run_all(self, views: np.ndarray) -> np.ndarray:
        """The network's outputs (copies, 5) of all copies, split over ``threads`` threads (each
        one ncnn run at a time: no synchronisation inside a layer, which stalls while other
        processes hold the cores)."""
        if self._pool is None or len(views) == 1:
            return np.stack([self._run(v) for v in views])
        chunks = np.array_split(np.arange(len(views)), self.threads)
        futures = [self._pool.submit(self._run_chunk, views, c, w) for w, c in enumerate(chunks) if w]
        return np.concatenate([self._run_chunk(views, chunks[0], 0)] + [f.result() for f in futures])

    def _run_chunk(self, views: np.ndarray, index: np.ndarray, worker: int) -> np.ndarray:
        return np.stack([self._run(views[i], worker) for i in index])

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """Omega_hat (5,) in [0, 1] of one float32 (84, 84) image in [0, 1] (not checked)."""
        np.subtract(image.reshape(-1), np.float32(0.5), out=self._flat[:-1])
        self._flat[:-1] *= np.float32(4.0)                   # PerceptionNet.forward's scaling
        views = np.take(self._flat, self._gather)           # all copies' inputs, contiguous
        out = self._run_all(views)
        if self._tta:
            out = np.median(out - self._back, axis=0)
        return np.clip(out.reshape(-1), 0.0, 1.0)

    def predict(self, images) -> np.ndarray:
        """Normalised Omega (B, 5) in [0, 1] of float32 (B, 84, 84) images, checked as
        :meth:`PerceptionModel.predict` checks them."""
        x = network_images(images)
        return np.stack([self.predict_one(im) for im in x]).astype(np.float32)
