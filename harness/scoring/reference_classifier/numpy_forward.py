"""The reference classifier's evaluation-mode forward pass in plain NumPy (scoring side only).

Same network as :class:`~harness.scoring.reference_classifier.model.ReferenceClassifier`, same
weights, evaluation mode (batch normalisation with the stored running statistics folded into the
weights). Each convolution + 2x2 max-pool is **one float32 GEMM over pooling windows**: a row is
the 6x6 input patch under one pooled output, the columns are the 4 conv outputs of the pooling
window (the 5x5 kernel placed at the window's 4 offsets, zero elsewhere) times the channels, so
the pool is the maximum of 4 contiguous column groups:

    conv1+pool : (B*12*12, 36)      @ (36, 4*32)    -> max of 4 groups + shift -> ReLU
    conv2+pool : (B*4*4, 6*6*32)    @ (1152, 4*64)  -> max of 4 groups + shift -> ReLU
    fc1        : (B, 1024)          @ (1024, 128)   + shift -> ReLU          (the features)
    fc2        : (B, 128)           @ (128, 10)     + b                      (the logits)

(1.44x the multiply-adds of a plain im2col, but 2.8x smaller patch matrices, no strided pooling
and larger GEMMs; the per-channel shift commutes with the max, so it is added after the pool, on
a quarter of the values.) Activations are channels-last (NHWC) and every intermediate lives in
buffers allocated once per call and reused for each block (no page faults per block).

**Bitwise independence of batch size and order.** Every GEMM is called with one fixed shape: the
images are cut into blocks of :data:`BLOCK` (the last one zero-padded), so each image's outputs
come from the same sequence of floating-point operations whatever the number of images, their
order, or the ``batch_size`` a caller asks for. (BLAS splits a product over its rows and columns,
never over the summed dimension, so a row's result does not depend on the row's position in the
block either; ``tests/test_reference_classifier.py`` checks it bitwise.)

Against Chainer's own forward pass (``model.features_and_logits``) the features agree to a few
1e-6 absolute (different summation order and the folded normalisation) and the predicted classes
are identical; ``tests/test_reference_classifier.py`` states and checks the tolerance.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_SIZE = 128  #: the penultimate layer's width (the features of fcd, kid, prdc)
#: Images per GEMM call (fixed: see the module docstring). 100 keeps conv1's output block
#: (7 MB) near the caches; measured 1.10 s CPU per 10k images (250: 1.29 s).
BLOCK = 100
_BN_EPS = 2e-5  # chainer.links.BatchNormalization's default eps, used by the reference
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # the conv outputs of a 2x2 pooling window


def _fold_bn(params: dict[str, np.ndarray], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) float64 of evaluation-mode batch normalisation ``gamma (x - mean)/sqrt(var+eps) + beta``."""
    gamma = params[f"{bn}/gamma"].astype(np.float64)
    beta = params[f"{bn}/beta"].astype(np.float64)
    mean = params[f"{bn}/avg_mean"].astype(np.float64)
    var = params[f"{bn}/avg_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + _BN_EPS)
    return scale, beta - mean * scale


def _pooled_kernel(w_hwio: np.ndarray) -> np.ndarray:
    """(5, 5, C_in, C_out) -> (6*6*C_in, 4*C_out) float32: the kernel at each offset of a 2x2 pooling window."""
    c_in, c_out = w_hwio.shape[2:]
    out = np.zeros((6, 6, c_in, 4, c_out))
    for q, (dy, dx) in enumerate(_OFFSETS):
        out[dy:dy + 5, dx:dx + 5, :, q] = w_hwio
    return np.ascontiguousarray(out.reshape(36 * c_in, 4 * c_out), dtype=np.float32)


def _pool4(groups: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Max over axis -2 (the 4 conv outputs of each pooling window), written into ``out``."""
    np.maximum(groups[..., 0, :], groups[..., 1, :], out=out)
    np.maximum(out, groups[..., 2, :], out=out)
    np.maximum(out, groups[..., 3, :], out=out)
    return out


class NumpyReference:
    """The folded weights of the reference classifier and its forward pass (no Chainer)."""

    source = None  # the Chainer link the weights were read from (set by the loader)

    def __init__(self, params: dict[str, np.ndarray]):
        s1, b1 = _fold_bn(params, "bn1")
        s2, b2 = _fold_bn(params, "bn2")
        s3, b3 = _fold_bn(params, "bn3")
        w1 = params["conv1/W"].astype(np.float64) * s1[:, None, None, None]   # (32, 1, 5, 5)
        w2 = params["conv2/W"].astype(np.float64) * s2[:, None, None, None]   # (64, 32, 5, 5)
        fc1 = params["fc1/W"].astype(np.float64)                               # (128, 1024), input NCHW (64,4,4)
        self.w1 = _pooled_kernel(w1.transpose(2, 3, 1, 0))                     # (36, 128)
        self.b1 = b1.astype(np.float32)
        self.w2 = _pooled_kernel(w2.transpose(2, 3, 1, 0))                     # (1152, 256)
        self.b2 = b2.astype(np.float32)
        fc1_nhwc = fc1.reshape(128, 64, 4, 4).transpose(0, 2, 3, 1).reshape(128, 1024)
        self.w3 = np.ascontiguousarray((fc1_nhwc * s3[:, None]).T, dtype=np.float32)  # (1024, 128)
        self.b3 = b3.astype(np.float32)
        self.w4 = np.ascontiguousarray(params["fc2/W"].T, dtype=np.float32)           # (128, 10)
        self.b4 = params["fc2/b"].astype(np.float32)

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, 28, 28) float32 -> (logits (N, 10) float32, features (N, 128) float32)."""
        x = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, 28, 28)
        n, b = len(x), BLOCK
        logits = np.empty((n, 10), dtype=np.float32)
        feats = np.empty((n, 128), dtype=np.float32)
        pad = np.zeros((b, 28, 28), dtype=np.float32)
        cols1 = np.empty((b, 12, 12, 6, 6), dtype=np.float32)
        out1 = np.empty((b * 144, 128), dtype=np.float32)
        h1 = np.empty((b, 12, 12, 32), dtype=np.float32)
        cols2 = np.empty((b, 4, 4, 6, 6, 32), dtype=np.float32)
        out2 = np.empty((b * 16, 256), dtype=np.float32)
        h2 = np.empty((b, 4, 4, 64), dtype=np.float32)
        f = np.empty((b, 128), dtype=np.float32)
        y = np.empty((b, 10), dtype=np.float32)
        for i in range(0, n, b):
            block = x[i:i + b]
            m = len(block)
            if m < b:
                pad[:m] = block
                pad[m:] = 0.0
                block = pad
            np.copyto(cols1, sliding_window_view(block, (6, 6), axis=(1, 2))[:, ::2, ::2])
            np.matmul(cols1.reshape(b * 144, 36), self.w1, out=out1)
            _pool4(out1.reshape(b, 12, 12, 4, 32), h1)
            h1 += self.b1
            np.maximum(h1, 0.0, out=h1)
            np.copyto(cols2, sliding_window_view(h1, (6, 6), axis=(1, 2))[:, ::2, ::2].transpose(0, 1, 2, 4, 5, 3))
            np.matmul(cols2.reshape(b * 16, 1152), self.w2, out=out2)
            _pool4(out2.reshape(b, 4, 4, 4, 64), h2)
            h2 += self.b2
            np.maximum(h2, 0.0, out=h2)
            np.matmul(h2.reshape(b, 1024), self.w3, out=f)
            f += self.b3
            np.maximum(f, 0.0, out=f)
            np.matmul(f, self.w4, out=y)
            y += self.b4
            feats[i:i + m] = f[:m]
            logits[i:i + m] = y[:m]
        return logits, feats
