"""Hostile submission segfault_before_output: expected CRASH."""

import ctypes

from hostile import hostile_model


def attack(x=None):
    ctypes.string_at(0)  # SIGSEGV


Model, fit = hostile_model(attack, 'train')
