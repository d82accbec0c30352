"""Grading harness for the "Deep learning with Chainer" MNIST course."""

__version__ = "0.1.0"
