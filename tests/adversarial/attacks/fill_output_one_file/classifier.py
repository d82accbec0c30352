"""Hostile submission fill_output_one_file: expected OUTPUT_LIMIT."""

from hostile import fill_file, hostile_model

TARGET = "/output/fill.bin"


def attack(x=None):
    fill_file(TARGET)


Model, fit = hostile_model(attack, 'train')
