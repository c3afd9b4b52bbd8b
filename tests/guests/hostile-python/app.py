"""A Python detector that breaks the sandbox's rules on purpose, chosen by the item's name
(`tests/it/python.rs`): the Python variants of `tests/guests/hostile`."""

import binascii
import struct
import time

import prelabel
from prelabel import Label


def png_header(width, height):
    """A PNG whose header claims `width` x `height` pixels (a decompression bomb's start)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", binascii.crc32(chunk))


class Hostile:
    def __init__(self):
        pass

    def detect(self, item):
        what = item.name.split(".")[0].split("-")[0]
        if what == "loop":
            while True:
                pass
        if what == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if what == "sleep":
            time.sleep(3600)
        if what == "raise":
            raise ValueError(f"boom on purpose on {item.name}")
        if what == "invalid":
            raise prelabel.InvalidItem(f"{item.name} is not for me")
        if what == "bomb":
            prelabel.blob(png_header(100_000, 100_000), (300, 300))
        if what == "huge":
            # A 16384 x 16384 x 3 float tensor: 3 GiB, over any sane cap.
            prelabel.blob(item.data, (16384, 16384))
        if what == "nonsense":
            prelabel.blob(item.data, (0, 300))
        if what == "return":
            return ["not an annotation"]
        if what == "blob":
            (w, h), _ = prelabel.blob(item.data, (8, 8))
            return [Label(f"{w}x{h}")]
        return [Label("ok")]


WitWorld = prelabel.world(Hostile)
