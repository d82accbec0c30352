"""The one place the harness imports Chainer: shims first, then ``chainer``."""

import warnings

from harness.compat import prepare_chainer

prepare_chainer()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pkg_resources' deprecation notice, printed by Chainer itself
    import chainer  # noqa: E402

__all__ = ["chainer"]
