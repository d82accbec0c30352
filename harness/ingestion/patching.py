"""Chainer's CPU methods replaced by the harness's own, as one set installed and removed whole.

``fast_conv``, ``fast_pool`` and ``fast_adam`` each hold a :class:`MethodPatches`: the class
attributes they replace, Chainer's own methods to fall back to (also before any install), and how
many calls each side served.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable

STOCK = "chainer"  # what describe() says when Chainer's own methods run


class MethodPatches:
    """``(class, attribute, replacement)`` triples, installed and uninstalled together (idempotent,
    thread-safe), with Chainer's originals kept for :meth:`stock` and :meth:`fallback`."""

    def __init__(self, name: str, patches: Iterable[tuple[type, str, Callable]]):
        self.name = name
        self.patches = tuple(patches)  # (class, attribute, replacement)
        self._stock = {(cls, attr): cls.__dict__[attr] for cls, attr, _ in self.patches}  # as imported
        self._originals: dict[tuple[type, str], object] = {}
        self._lock = threading.Lock()
        self.counts = {"fast": 0, "fallback": 0}

    def install(self) -> bool:
        """Put the replacements in place. True if it changed anything."""
        with self._lock:
            if self._originals:
                return False
            for cls, attr, fn in self.patches:
                self._originals[(cls, attr)] = cls.__dict__[attr]
                setattr(cls, attr, fn)
            return True

    def uninstall(self) -> bool:
        """Put back the methods :meth:`install` replaced. True if it changed anything."""
        with self._lock:
            if not self._originals:
                return False
            for cls, attr, _ in self.patches:
                setattr(cls, attr, self._originals.pop((cls, attr)))
            return True

    def installed(self) -> bool:
        return bool(self._originals)

    def describe(self) -> str:
        """``self.name`` while installed, else ``"chainer"`` (for results)."""
        return self.name if self.installed() else STOCK

    def stock(self, cls: type, attr: str) -> Callable:
        """Chainer's own method that ``cls.attr`` replaced."""
        return self._originals.get((cls, attr)) or self._stock[(cls, attr)]

    def fallback(self, cls: type, attr: str, *args):
        """Run Chainer's own ``cls.attr`` on ``args`` (counted as a fallback)."""
        self.counts["fallback"] += 1
        return self.stock(cls, attr)(*args)

    def served(self) -> None:
        """Count a call served by the replacement."""
        self.counts["fast"] += 1

    def stats(self) -> dict[str, int]:
        """Calls served here (``fast``) and handed to Chainer's own code (``fallback``) since the reset."""
        return dict(self.counts)

    def reset_stats(self) -> None:
        self.counts["fast"] = self.counts["fallback"] = 0

    @contextlib.contextmanager
    def enabled(self, on: bool = True):
        """``with enabled(True/False):`` runs the block with (or without) the replacements."""
        was = self.installed()
        self.install() if on else self.uninstall()
        try:
            yield
        finally:
            self.install() if was else self.uninstall()
