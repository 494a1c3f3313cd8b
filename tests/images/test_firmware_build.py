"""`bms-twin firmware build` (twin/images): the recipe, the cache and the refusals,
on small source trees whose Makefiles record what they were given (real make,
real files; the real MicroPython builds are in test_firmware_images.py).

Run: .venv/bin/python -m pytest tests/images/test_firmware_build.py -q
"""
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from twin import cli
from twin.images import ImageError, build_image, firmware_dir, image_key
from twin.images.source import find_source, given_source, unpack
from twin.images.targets import MANIFEST_OPTIONS, MICROPYTHON_VERSION

MPY_CROSS_MAKEFILE = """all:
\tmkdir -p $(BUILD)
\tprintf 'FROZEN_MANIFEST=[%s]\\n' "$(FROZEN_MANIFEST)" > $(BUILD)/mpy-cross
"""
# What a port's make gets, written into the "image"; it fails as a port does when
# MPY_LIB_DIR lacks its README.md.
UNIX_MAKEFILE = """all:
\tmkdir -p $(BUILD)
\ttest -e $(MPY_LIB_DIR)/README.md
\tcat $(FROZEN_MANIFEST) > $(BUILD)/micropython
\tprintf 'MPYCROSS=%s\\nCFLAGS_EXTRA=%s\\nVARIANT=%s\\n' "$(MICROPY_MPYCROSS)" "$(CFLAGS_EXTRA)" "$(VARIANT)" \\
\t\t>> $(BUILD)/micropython
"""
FAILING_MAKEFILE = """all:
\t@echo "main.c:1:10: fatal error: nothing.h: No such file or directory"
\t@exit 2
"""


def fake_tree(root: Path, version=MICROPYTHON_VERSION, unix_makefile=UNIX_MAKEFILE) -> Path:
    major, minor, micro = version.split(".")
    (root / "py").mkdir(parents=True)
    (root / "py" / "mpconfig.h").write_text("#define MICROPY_VERSION_MAJOR %s\n#define MICROPY_VERSION_MINOR %s\n"
                                            "#define MICROPY_VERSION_MICRO %s\n" % (major, minor, micro))
    (root / "mpy-cross").mkdir()
    (root / "mpy-cross" / "Makefile").write_text(MPY_CROSS_MAKEFILE)
    (root / "ports" / "unix").mkdir(parents=True)
    (root / "ports" / "unix" / "Makefile").write_text(unix_makefile)
    return root


def tree_files(root: Path):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def firmware_copy(tmp_path):
    dest = tmp_path / "firmware"
    shutil.copytree(firmware_dir(), dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_a_build_freezes_the_firmware_through_its_manifest_and_is_cached(tmp_path, firmware_copy, monkeypatch):
    tree = fake_tree(tmp_path / "src")
    before = tree_files(tree)
    cache = tmp_path / "cache"
    monkeypatch.setenv("FROZEN_MANIFEST", "/leaked/manifest.py")    # must reach neither make
    first = build_image("unix-32", str(tree), cache_dir=cache, fw_dir=firmware_copy, say=lambda text: None)
    assert first.built and first.key == image_key("unix-32", firmware_copy)
    assert first.path == cache / "images" / ("unix-32-" + first.key) / "micropython"
    image_dir = first.path.parent
    made = first.path.read_text()
    # the board manifest includes the staged copy's firmware/manifest.py with the link component,
    # and the one kept names the kept copy
    include = "include(%r, board_hal=False, link_hal=True)"
    assert include % str(image_dir / "firmware" / "manifest.py") in (image_dir / "manifest.py").read_text()
    frozen_from = Path(made.split("include(")[1].split("'")[1])
    assert frozen_from.name == "manifest.py" and frozen_from.parent.name == "firmware"
    assert include % str(frozen_from) in made
    assert MANIFEST_OPTIONS == {"board_hal": False, "link_hal": True}
    assert "CFLAGS_EXTRA=-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT" in made
    assert "VARIANT=standard" in made
    mpy_cross = Path(made.split("MPYCROSS=")[1].splitlines()[0])
    assert mpy_cross.read_text() == "FROZEN_MANIFEST=[]\n"   # built on its own, the port's manifest kept out
    assert tree_files(image_dir / "firmware") == tree_files(firmware_copy)
    meta = json.loads((image_dir / "image.json").read_text())
    assert (meta["micropython"], meta["target"], meta["key"]) == (MICROPYTHON_VERSION, "unix-32", first.key)
    assert meta["source"]["kind"] == "dir" and meta["source"]["where"] == str(tree.resolve())
    assert (image_dir / "build.log").read_text().startswith("$ make -C ")
    assert tree_files(tree) == before, "the source directory was written to"
    again = build_image("unix-32", str(tree), cache_dir=cache, fw_dir=firmware_copy)
    assert (again.path, again.key, again.built) == (first.path, first.key, False)


def test_a_firmware_change_is_a_new_image_beside_the_old(tmp_path, firmware_copy):
    tree = fake_tree(tmp_path / "src")
    cache = tmp_path / "cache"
    old = build_image("unix-32", str(tree), cache_dir=cache, fw_dir=firmware_copy, say=lambda text: None)
    with open(firmware_copy / "bmsfw" / "config.py", "a") as fh:
        fh.write("\n# a change\n")
    new = build_image("unix-32", str(tree), cache_dir=cache, fw_dir=firmware_copy, say=lambda text: None)
    assert new.built and new.key != old.key and new.path != old.path
    assert old.path.is_file() and "# a change" in (new.path.parent / "firmware" / "bmsfw" / "config.py").read_text()


def test_the_key_follows_every_firmware_file_and_the_target(tmp_path, firmware_copy):
    other = tmp_path / "other"
    shutil.copytree(firmware_copy, other)
    assert image_key("unix-32", other) == image_key("unix-32", firmware_copy)
    assert image_key("qemu-cortex-m3", other) != image_key("unix-32", other)
    (other / "bmsfw" / "new_module.py").write_text("X = 1\n")
    assert image_key("unix-32", other) != image_key("unix-32", firmware_copy)


def test_a_tarball_is_unpacked_once_into_the_cache(tmp_path):
    tree = fake_tree(tmp_path / ("micropython-%s" % MICROPYTHON_VERSION))
    tarball = tmp_path / "mp.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    source = given_source(str(tarball), "--micropython-src")
    assert source.kind == "tarball"
    cache = tmp_path / "cache"
    unpacked = unpack(source, cache)
    assert unpacked == cache / ("src-" + source.ident)
    assert (unpacked / "ports" / "unix" / "Makefile").read_text() == UNIX_MAKEFILE
    (unpacked / "marker").write_text("kept")
    assert unpack(source, cache) == unpacked and (unpacked / "marker").exists()


def test_a_source_of_another_version_is_refused(tmp_path):
    tree = fake_tree(tmp_path / "src", version="1.27.0")
    with pytest.raises(ImageError) as err:
        unpack(given_source(str(tree), "--micropython-src"), tmp_path / "cache")
    assert err.value.field == "source" and "is MicroPython 1.27.0; bms-twin builds %s" % MICROPYTHON_VERSION \
        in str(err.value)


def test_a_tarball_without_one_source_tree_is_refused(tmp_path):
    tarball = tmp_path / "odd.tar"
    (tmp_path / "a.txt").write_text("a")
    with tarfile.open(tarball, "w") as tar:
        tar.add(tmp_path / "a.txt", arcname="a.txt")
    with pytest.raises(ImageError) as err:
        unpack(given_source(str(tarball), "--micropython-src"), tmp_path / "cache")
    assert "not a MicroPython release tarball" in str(err.value)
    assert not list((tmp_path / "cache").glob("src-*"))


def test_the_option_comes_before_the_environment_and_the_vendored_tarball(tmp_path):
    a, b = fake_tree(tmp_path / "a"), fake_tree(tmp_path / "b")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    with tarfile.open(vendor / ("micropython-%s.tar.gz" % MICROPYTHON_VERSION), "w:gz") as tar:
        tar.add(a, arcname="micropython")
    env = {"MICROPYTHON_SRC": str(b)}
    assert find_source(str(a), env, vendor).where == str(a.resolve())
    assert find_source(None, env, vendor).where == str(b.resolve())
    assert find_source(None, {}, vendor).kind == "tarball"


def test_no_source_anywhere_names_every_way_to_give_one(tmp_path):
    with pytest.raises(ImageError) as err:
        find_source(None, {}, tmp_path / "vendor", clone_url=str(tmp_path / "no-repository"))
    text = str(err.value)
    assert err.value.field == "MicroPython source"
    for part in ("--micropython-src", "$MICROPYTHON_SRC", str(tmp_path / "vendor"),
                 "micropython-%s.tar.gz" % MICROPYTHON_VERSION, "cloning v%s" % MICROPYTHON_VERSION,
                 "no-repository"):
        assert part in text, part


def firmware_cli(*argv):
    return cli.main(["firmware", "build", *argv])


def test_a_failing_make_is_one_line_exit_1_and_keeps_its_log(tmp_path, capsys):
    tree = fake_tree(tmp_path / "src", unix_makefile=FAILING_MAKEFILE)
    cache = tmp_path / "cache"
    assert firmware_cli("--target", "unix-32", "--micropython-src", str(tree), "--cache-dir", str(cache)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    failed = [line for line in captured.err.splitlines() if "failed" in line]
    assert len(failed) == 1 and failed[0].startswith("bms-twin firmware: make of unix-32 failed (exit 2): "
                                                     "main.c:1:10: fatal error: nothing.h"), captured.err
    log = Path(failed[0].rsplit("the whole log: ", 1)[1])
    assert log.is_file() and "fatal error: nothing.h" in log.read_text()
    assert [p.name for p in (cache / "images").iterdir()] == [log.name]     # no image, no stage left


@pytest.mark.parametrize("argv, expected", [
    (["--target", "esp32"], "--target='esp32': expected one of unix-32, qemu-cortex-m3"),
    (["--target", "unix-32", "--micropython-src", "no/such/dir"],
     "--micropython-src='no/such/dir': no such file or directory (expected a MicroPython source directory or "
     "tarball)"),
    (["--target", "unix-32", "--micropython-src", "notes.txt"],
     "--micropython-src='notes.txt': expected a MicroPython source directory or a tarball "
     "(.tar.gz, .tgz, .tar.xz, .tar)"),
    (["--target", "unix-32", "--micropython-src", "."],
     "--micropython-src='.': is a directory but not a MicroPython source tree (no py/mpconfig.h in it)"),
])
def test_bad_input_is_one_line_exit_2_and_builds_nothing(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a tarball")
    assert firmware_cli(*argv, "--cache-dir", "cache") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == ["bms-twin firmware: " + expected]
    assert not (tmp_path / "cache").exists()


def test_a_bad_source_in_the_environment_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MICROPYTHON_SRC", str(tmp_path / "gone.tar.gz"))
    assert firmware_cli("--target", "unix-32", "--cache-dir", str(tmp_path / "cache")) == 2
    assert capsys.readouterr().err.startswith("bms-twin firmware: MICROPYTHON_SRC=")


def test_a_missing_cross_compiler_is_refused_with_its_debian_packages(tmp_path, capsys, monkeypatch):
    tree = fake_tree(tmp_path / "src")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert firmware_cli("--target", "qemu-cortex-m3", "--micropython-src", str(tree),
                        "--cache-dir", str(tmp_path / "cache")) == 2
    assert capsys.readouterr().err.splitlines() == [
        "bms-twin firmware: toolchain='arm-none-eabi-gcc': is not installed; qemu-cortex-m3 needs it "
        "(Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"]
    assert not (tmp_path / "cache").exists()
