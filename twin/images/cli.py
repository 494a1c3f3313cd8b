"""`bms-twin firmware build --target unix-32|qemu-cortex-m3`: MicroPython with the
firmware frozen in, from the cache or built; prints the image's path on stdout."""
from __future__ import annotations

import sys

from twin.images.build import build_image
from twin.images.errors import BuildFailed
from twin.images.source import ENV_VAR, VENDOR_DIR
from twin.images.targets import MICROPYTHON_TAG, MICROPYTHON_VERSION, TARGETS


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="build (or take from the cache) MicroPython %s with the firmware "
                                             "frozen in through firmware/manifest.py" % MICROPYTHON_VERSION)
    build.add_argument("--target", required=True, metavar="TARGET",
                       help="; ".join("%s: %s" % (name, t.what) for name, t in TARGETS.items()))
    build.add_argument("--micropython-src", default=None, metavar="DIR|TARBALL",
                       help="the MicroPython %s source, a directory or a tarball (default: $%s, else "
                            "micropython-%s.tar.gz in %s, else a clone of %s)"
                            % (MICROPYTHON_VERSION, ENV_VAR, MICROPYTHON_VERSION, VENDOR_DIR, MICROPYTHON_TAG))
    build.add_argument("--cache-dir", default=None,
                       help="where images and builds are kept (default $XDG_CACHE_HOME/bms-twin/"
                            "micropython-%s, ~/.cache when XDG_CACHE_HOME is unset)" % MICROPYTHON_VERSION)
    build.add_argument("--rebuild", action="store_true",
                       help="build even when the cache has the image (e.g. after editing a source directory)")


def run(args) -> int:
    try:
        image = build_image(args.target, args.micropython_src, cache_dir=args.cache_dir, rebuild=args.rebuild)
    except BuildFailed as failed:
        print("bms-twin firmware: %s" % failed, file=sys.stderr)
        return 1
    print("bms-twin firmware: %s %s (key %s)" % (image.target, "built" if image.built else "from the cache",
                                                 image.key), file=sys.stderr)
    print(image.path)
    return 0
