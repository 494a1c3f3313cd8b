# setuptools needs setup.py only to hook cffi's out-of-line build of c_core/.
from setuptools import setup

setup(cffi_modules=["twin/_build_core.py:ffibuilder"])
