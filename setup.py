# setuptools needs setup.py for what pyproject.toml cannot say:
# - cffi's out-of-line build of c_core/ (cffi_modules);
# - the packages, found rather than listed, so a new subpackage or data folder of twin/
#   or mqtt_bridge/ ships without a list to edit; bmsfw from firmware/bmsfw; and
#   bms_twin_firmware, which is firmware/ as it goes onto a board (main.py, boot.py,
#   manifest.py beside bmsfw/), for users without a clone (docs/board.md);
# - the wheel's tag: cffi builds the extension for the limited API (_core.abi3.so), so
#   one wheel serves every CPython from requires-python's 3.11 on (cp311-abi3).
from setuptools import find_namespace_packages, setup

setup(
    cffi_modules=["twin/_build_core.py:ffibuilder"],
    packages=find_namespace_packages(include=["twin", "twin.*", "mqtt_bridge", "mqtt_bridge.*"],
                                     exclude=["*.__pycache__"])
    + ["bmsfw", "bms_twin_firmware", "bms_twin_firmware.bmsfw"],
    package_dir={"bmsfw": "firmware/bmsfw", "bms_twin_firmware": "firmware"},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
