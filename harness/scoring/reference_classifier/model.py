"""The reference classifier that scores the generate track (scoring side only).

A small LeNet-style CNN with batch normalisation, chosen for a cheap CPU forward pass
(about 4 M multiply-adds per image: 10,000 images in a few seconds on two cores) that still
reaches >= 99.3 % test accuracy:

    x (N,1,28,28) -> conv5x5(32, valid) -> BN -> ReLU -> maxpool 2   (N,32,12,12)
                  -> conv5x5(64, valid) -> BN -> ReLU -> maxpool 2   (N,64,4,4)
                  -> linear(1024 -> 128) -> BN -> ReLU               (N,128)  features
                  -> linear(128 -> 10)                               (N,10)   logits

The 128 penultimate activations (post-ReLU, the input of the last layer, like Inception's
pool3 for FID) feed the feature metrics (fcd, kid, precision/recall/density/coverage).
The weights are trained by ``scripts/train_reference_classifier.py``.
"""

from __future__ import annotations

from harness.chainer_env import chainer

import chainer.functions as F  # noqa: E402  (after the shim in harness.chainer_env)
import chainer.links as L  # noqa: E402

from harness.scoring.reference_classifier.numpy_forward import FEATURE_SIZE  # noqa: E402


def max_pool_2x2(h):
    """2x2 max pooling, stride 2 (even H, W) as a reshape + max.

    Same result as ``F.max_pooling_2d(h, 2)`` on even sizes, but Chainer's CPU pooling goes
    through im2col + argmax and is several times slower.
    """
    n, c, height, width = h.shape
    return F.max(F.reshape(h, (n, c, height // 2, 2, width // 2, 2)), axis=(3, 5))


class ReferenceClassifier(chainer.Chain):
    """The generate track's fixed MNIST classifier; buildable with no arguments."""

    feature_size = FEATURE_SIZE

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.conv1 = L.Convolution2D(1, 32, 5, nobias=True)
            self.bn1 = L.BatchNormalization(32)
            self.conv2 = L.Convolution2D(32, 64, 5, nobias=True)
            self.bn2 = L.BatchNormalization(64)
            self.fc1 = L.Linear(64 * 4 * 4, FEATURE_SIZE, nobias=True)
            self.bn3 = L.BatchNormalization(FEATURE_SIZE)
            self.fc2 = L.Linear(FEATURE_SIZE, 10)

    def features(self, x, finetune: bool = False):
        """Penultimate activations: float32 (N,1,28,28) -> (N, 128)."""
        h = max_pool_2x2(F.relu(self.bn1(self.conv1(x), finetune=finetune)))
        h = max_pool_2x2(F.relu(self.bn2(self.conv2(h), finetune=finetune)))
        return F.relu(self.bn3(self.fc1(h), finetune=finetune))

    def forward(self, x, finetune: bool = False):
        """Logits (N, 10)."""
        return self.fc2(self.features(x, finetune=finetune))

    def features_and_logits(self, x):
        """Both outputs from one pass: ((N, 128), (N, 10))."""
        h = self.features(x)
        return h, self.fc2(h)

