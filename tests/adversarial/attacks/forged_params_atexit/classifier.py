import atexit
import zipfile

from plain_model import Model  # noqa: F401  (the attack is not in the model)


def npy_header(shape) -> bytes:
    """A version 1.0 .npy header that numpy's own reader accepts, for any tuple of ints."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def tamper():
    with zipfile.ZipFile("/output/model.npz", "w") as zf:
        zf.writestr("linear/W.npy", npy_header((-123456,)))


atexit.register(tamper)
