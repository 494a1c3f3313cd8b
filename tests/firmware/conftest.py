# Puts firmware/ (the bmsfw package) and this directory (fakes.py) on sys.path
# so the firmware tests import exactly what a board or MicroPython would.
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_FIRMWARE = os.path.normpath(os.path.join(_HERE, "..", "..", "firmware"))
for _path in (_FIRMWARE, _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)
