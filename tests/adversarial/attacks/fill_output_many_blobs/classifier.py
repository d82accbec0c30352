"""Hostile submission fill_output_many_blobs: expected OUTPUT_LIMIT."""

import time

from hostile import hostile_model, succeeded


def attack(x=None):
    chunk = b"\xff" * (1 << 20)
    total = 0
    for i in range(64):  # 16 MiB files, each under the file size cap, 1 GiB in all
        with open(f"/output/blob{i}.bin", "wb") as f:
            for _ in range(16):
                f.write(chunk)
                total += len(chunk)
    time.sleep(30)
    succeeded(f"wrote {total >> 20} MiB to /output and was not stopped")


Model, fit = hostile_model(attack, 'train')
