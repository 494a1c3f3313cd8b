"""cffi builder (API, out-of-line mode) for the C core in c_core/.

`pip install .` runs this through setup.py's cffi_modules; `python twin/_build_core.py`
builds in place for development. cell.h is the one contract: its CDEF section is
handed to cdef verbatim, and the same header is #included by the compiled module,
so the prototypes are never written twice.
"""
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "c_core"
SOURCES = ["cell.c", "params.c", "segment.c", "fleet.c"]


def _cdef_text() -> str:
    header = (CORE / "cell.h").read_text()
    start = header.index("/* CDEF-BEGIN */") + len("/* CDEF-BEGIN */")
    end = header.index("/* CDEF-END */")
    return header[start:end]


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
ffibuilder.set_source(
    "twin._core",
    '#include "cell.h"',
    sources=[str((CORE / name).relative_to(ROOT)) for name in SOURCES],
    include_dirs=[str(CORE.relative_to(ROOT))],
    # -O3 and -fno-math-errno change no result (errors come back as codes, not
    # errno); -ffp-contract=off keeps a CFLAGS -march from fusing multiply-adds,
    # which would change the last bits of the results. Nothing machine-specific.
    extra_compile_args=["-std=c11", "-O3", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wextra"],
    libraries=["m"],
)

if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    ffibuilder.compile(verbose=False)
