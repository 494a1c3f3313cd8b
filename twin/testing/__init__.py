"""Testing a firmware on the twin bench: open_bench() and the pytest plugin's `bench`
fixture (twin/testing/plugin.py, a pytest11 entry point). docs/testing.md."""
from twin.testing.session import BACKENDS, BenchSession, ExpectationFailed, open_bench

__all__ = ["BACKENDS", "BenchSession", "ExpectationFailed", "open_bench"]
