# HIL tests: the twin (twin/hil/) against the firmware (bmsfw.link_main)
# in its own process over a real pseudo-terminal. Puts firmware/ (bmsfw) and
# this directory (hil_helpers.py) on sys.path.
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_FIRMWARE = os.path.normpath(os.path.join(_HERE, "..", "..", "firmware"))
for _path in (_FIRMWARE, _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)
