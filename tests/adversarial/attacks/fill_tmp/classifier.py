"""Hostile submission fill_tmp: expected OUTPUT_LIMIT."""

from hostile import fill_file, hostile_model

TARGET = "/tmp/fill.bin"


def attack(x=None):
    fill_file(TARGET)


Model, fit = hostile_model(attack, 'train')
