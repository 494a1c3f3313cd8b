"""The seed patent's measured examples (tests/data/seed_examples.toml), for the tests
that calibrate the twin against them or parse their protocols."""
import functools
import tomllib
from pathlib import Path

SEED_EXAMPLES_TOML = Path(__file__).resolve().parents[1] / "data" / "seed_examples.toml"


@functools.lru_cache(maxsize=None)
def _load() -> dict:
    with open(SEED_EXAMPLES_TOML, "rb") as handle:
        return tomllib.load(handle)


def seed_examples() -> dict:
    """Example name (D042, control_no_lipon, D049, D111) -> its table."""
    return _load()["example"]


def seed_cell() -> dict:
    """What the patent says all its example cells share."""
    return _load()["cell"]["common"]
