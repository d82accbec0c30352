"""The reference classifier's evaluation-mode forward pass in plain NumPy (scoring side only).

Same network as :class:`~harness.scoring.reference_classifier.model.ReferenceClassifier`, same
weights, evaluation mode (batch normalisation with the stored running statistics), computed as
im2col + one float32 GEMM per layer with the batch normalisation folded into the weights:

    conv1 5x5 (1->32)  : (B*24*24, 25)  @ (25, 32)     + shift -> max-pool 2x2 -> ReLU
    conv2 5x5 (32->64) : (B*8*8, 800)   @ (800, 64)    + shift -> max-pool 2x2 -> ReLU
    fc1 (1024->128)    : (B, 1024)      @ (1024, 128)  + shift -> ReLU          (the features)
    fc2 (128->10)      : (B, 128)       @ (128, 10)    + b                      (the logits)

Activations are kept channels-last (NHWC), so every im2col is a strided view of a contiguous
array; fc1's weights are permuted once to read the NHWC flattening.

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

#: Images per GEMM call (fixed: see the module docstring). 250 keeps conv1's im2col (14 MB) in a
#: few cache-sized passes and wastes at most 249 padded rows.
BLOCK = 250
_BN_EPS = 2e-5  # chainer.links.BatchNormalization's default eps, used by the reference


def _fold_bn(params: dict[str, np.ndarray], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) float64 of evaluation-mode batch normalisation ``gamma (x - mean)/sqrt(var+eps) + beta``."""
    gamma = params[f"{bn}/gamma"].astype(np.float64)
    beta = params[f"{bn}/beta"].astype(np.float64)
    mean = params[f"{bn}/avg_mean"].astype(np.float64)
    var = params[f"{bn}/avg_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + _BN_EPS)
    return scale, beta - mean * scale


class NumpyReference:
    """The folded weights of the reference classifier and its forward pass (no Chainer)."""

    source = None  # the Chainer link the weights were read from (set by the loader)

    def __init__(self, params: dict[str, np.ndarray]):
        s1, b1 = _fold_bn(params, "bn1")
        s2, b2 = _fold_bn(params, "bn2")
        s3, b3 = _fold_bn(params, "bn3")
        w1 = params["conv1/W"].astype(np.float64)                      # (32, 1, 5, 5)
        w2 = params["conv2/W"].astype(np.float64)                      # (64, 32, 5, 5)
        fc1 = params["fc1/W"].astype(np.float64)                       # (128, 1024), input NCHW (64,4,4)
        # conv1 patches are (ky, kx); conv2 patches are (ky, kx, c_in) (channels-last windows).
        self.w1 = np.ascontiguousarray((w1.reshape(32, 25) * s1[:, None]).T, dtype=np.float32)      # (25, 32)
        self.b1 = b1.astype(np.float32)
        self.w2 = np.ascontiguousarray((w2.transpose(0, 2, 3, 1).reshape(64, 800) * s2[:, None]).T,
                                       dtype=np.float32)                                             # (800, 64)
        self.b2 = b2.astype(np.float32)
        fc1_nhwc = fc1.reshape(128, 64, 4, 4).transpose(0, 2, 3, 1).reshape(128, 1024)
        self.w3 = np.ascontiguousarray((fc1_nhwc * s3[:, None]).T, dtype=np.float32)                # (1024, 128)
        self.b3 = b3.astype(np.float32)
        self.w4 = np.ascontiguousarray(params["fc2/W"].T, dtype=np.float32)                         # (128, 10)
        self.b4 = params["fc2/b"].astype(np.float32)

    def _block(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One block of exactly BLOCK images (B, 28, 28) float32 -> (features (B,128), logits (B,10))."""
        b = len(x)
        cols = sliding_window_view(x, (5, 5), axis=(1, 2)).reshape(b * 576, 25)   # copy: (B*24*24, 25)
        h = cols @ self.w1
        h += self.b1
        h = h.reshape(b, 12, 2, 12, 2, 32).max(axis=(2, 4))                         # (B, 12, 12, 32)
        np.maximum(h, 0.0, out=h)
        cols = sliding_window_view(h, (5, 5), axis=(1, 2))                          # (B, 8, 8, 32, 5, 5)
        cols = np.ascontiguousarray(cols.transpose(0, 1, 2, 4, 5, 3)).reshape(b * 64, 800)
        h = cols @ self.w2
        h += self.b2
        h = h.reshape(b, 4, 2, 4, 2, 64).max(axis=(2, 4))                           # (B, 4, 4, 64)
        np.maximum(h, 0.0, out=h)
        f = np.ascontiguousarray(h).reshape(b, 1024) @ self.w3
        f += self.b3
        np.maximum(f, 0.0, out=f)
        logits = f @ self.w4
        logits += self.b4
        return f, logits

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, 28, 28) float32 -> (logits (N, 10) float32, features (N, 128) float32)."""
        x = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, 28, 28)
        n = len(x)
        logits = np.empty((n, 10), dtype=np.float32)
        feats = np.empty((n, 128), dtype=np.float32)
        pad = np.zeros((BLOCK, 28, 28), dtype=np.float32)
        for i in range(0, n, BLOCK):
            block = x[i:i + BLOCK]
            m = len(block)
            if m < BLOCK:
                pad[:m] = block
                pad[m:] = 0.0
                block = pad
            f, y = self._block(block)
            feats[i:i + m] = f[:m]
            logits[i:i + m] = y[:m]
        return logits, feats
