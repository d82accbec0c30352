"""Hostile submission fill_dev_shm: expected OUTPUT_LIMIT."""

from hostile import fill_file, hostile_model

TARGET = "/dev/shm/fill.bin"


def attack(x=None):
    fill_file(TARGET)


Model, fit = hostile_model(attack, 'train')
