"""What each role's forward must return, checked (and gently fixed) on every call the harness makes.

The same functions serve ``harness check`` and ``harness grade``, so both say the same thing:
- a reconstruction or generated image of N x 784 values in another shape (``(N, 784)``, ``(N, 28, 28)``)
  is reshaped to ``(N, 1, 28, 28)`` (a warning);
- a discriminator's ``(N,)``, ``(N, 1)``, ``(N, 1, 1, 1)`` become ``(N, 1)`` logits, ``(N, 2, ...)`` ``(N, 2)``;
- a scalar where a batch was expected is a loss: the message says where the loss belongs (``train:``).
"""

from __future__ import annotations

import numpy as np

from harness.chainer_env import chainer

F = chainer.functions

IMAGE = (1, 28, 28)
INPUTS = "inputs are (N,1,28,28) float32 in [0, 1]"


class OutputError(Exception):
    """A forward output the harness cannot use; the message says how to fix it."""


def _loss_message(what: str, returns: str) -> str:
    return (f"forward returned a single number where {what} was expected: this looks like a loss: "
            f"return the {returns}; put the loss in `train:` (your own training function)")


def _shape(y) -> tuple:
    return tuple(int(d) for d in y.shape)


def conform(role: str, y, n: int, warn) -> object:
    """``y`` (forward's output on a batch of ``n``) in the shape the harness uses for ``role``.

    Roles: ``classify`` (logits (N,10)), ``generator`` (images), ``discriminator`` (logits (N,1) or
    (N,2)), ``anomaly`` (reconstruction). ``warn(message)`` is called for a shape fixed silently."""
    if isinstance(y, tuple):
        raise OutputError(f"forward returned a tuple of {len(y)}, expected one chainer.Variable "
                          f"(the {'reconstruction' if role == 'anomaly' else 'output'}; return the other values "
                          f"from another method)")
    if not hasattr(y, "shape") or not hasattr(y, "ndim"):
        return y  # not an array at all: check_forward names it
    shape = _shape(y)
    size = int(np.prod(shape)) if shape else 1
    if role == "classify":
        if y.ndim == 0 or (size == 1 and n > 1):
            raise OutputError(_loss_message("logits (N,10)", "logits (N,10) (the harness adds the cross-entropy)"))
        if shape != (n, 10):
            raise OutputError(f"logits have shape {shape}, expected ({n}, 10)" + _hint_784(shape, n))
        return y
    if role in ("generator", "anomaly"):
        what = "images" if role == "generator" else "a reconstruction"
        if y.ndim == 0 or (size == 1 and n > 1):
            raise OutputError(_loss_message(f"{what} (N,1,28,28)", "reconstruction" if role == "anomaly" else "images"))
        if shape == (n,) + IMAGE:
            return y
        if size == n * 784 and shape[:1] == (n,):
            warn(f"forward returns {what} of shape {shape}; the harness reshapes it to (N,1,28,28)")
            return F.reshape(y, (n,) + IMAGE)
        raise OutputError(f"{what} has shape {shape}, expected ({n}, 1, 28, 28)" + _hint_784(shape, n))
    if role == "discriminator":
        if y.ndim == 0 or (size == 1 and n > 1):
            raise OutputError(_loss_message("logits (N,1) or (N,2)", "logits, one per image (\"real\" = 1)"))
        if shape[:1] == (n,) and size == n:
            return y if shape == (n, 1) else F.reshape(y, (n, 1))
        if shape[:1] == (n,) and size == 2 * n:
            return y if shape == (n, 2) else F.reshape(y, (n, 2))
        raise OutputError(f"logits have shape {shape}, expected ({n},), ({n}, 1), ({n}, 1, 1, 1) or ({n}, 2)")
    return y


def _hint_784(shape: tuple, n: int) -> str:
    return f" ({INPUTS})" if 784 in shape or shape[:1] != (n,) else ""


def hint_for(message: str) -> str:
    """The fix to append to an exception raised inside forward, when it is about the input's shape."""
    if "784" in message and INPUTS not in message:
        return f" ({INPUTS}; flatten with F.reshape(x, (len(x), -1)) if your layers expect (N,784))"
    return ""


def range_problem(what: str, lo_found: float, hi_found: float) -> str | None:
    """A message when images leave [0, 1]; names the fix for the usual cause (a tanh output)."""
    if lo_found >= 0.0 and hi_found <= 1.0:
        return None
    fix = ""
    if lo_found >= -1.0 - 1e-6 and hi_found <= 1.0 + 1e-6 and lo_found < 0:
        fix = ": outputs in [-1, 1] (tanh): return `(y + 1) / 2` or end with `F.sigmoid`"
    return f"{what} range over [{lo_found:.3g}, {hi_found:.3g}], expected within [0, 1]{fix}"


def make_conforming(model, role: str, active, warn, ref: str) -> None:
    """Make ``model(x)`` return the shape the harness uses for ``role`` (see :func:`conform`).

    The instance gets a subclass of its own class whose ``__call__`` checks single-argument calls
    while ``active()`` is true (not inside the student's own ``train:``, where a model may return a
    loss by design). ``forward`` and ``__call__`` style models both work; isinstance still holds."""
    cls = type(model)

    def __call__(self, *args, **kwargs):
        y = cls.__call__(self, *args, **kwargs)
        if active() and len(args) == 1 and not kwargs:
            try:
                y = conform(role, y, len(args[0]), lambda message: warn(f"{ref}: {message}"))
            except OutputError as exc:
                raise OutputError(f"{ref}: {exc}") from None
        return y

    try:
        model.__class__ = type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__,
                                                      "__qualname__": cls.__qualname__})
    except TypeError:
        pass  # an exotic class: the loops' own checks still apply
