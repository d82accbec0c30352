"""Hostile submission fill_dev_shm: expected OUTPUT_LIMIT."""



from hostile import hostile_model, succeeded

TARGET = "/dev/shm/fill.bin"

def attack(x=None):
    chunk = b"\xff" * (1 << 20)
    written = 0
    with open(TARGET, "wb") as f:
        while written < (2 << 30):
            f.write(chunk)
            f.flush()
            written += len(chunk)
    succeeded(f"wrote {written >> 20} MiB to {TARGET}")


Model, fit = hostile_model(attack, 'train')
