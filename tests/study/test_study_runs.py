"""`bms-twin sweep` end to end, as real processes: the crack map reproduces the
twin's critical densities from the table it writes; one process, every core and
a Dask LocalCluster give identical tables; a killed run resumes with only the
variants it lacks. Run: .venv/bin/python -m pytest tests/study/test_study_runs.py -q
"""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from twin.cell import Cell
from twin.fleet import available_cores
from twin.parameters import load_parameter_set
from twin.study import crack_boundary, load_study, read_table, run_study

ROOT = Path(__file__).resolve().parents[2]
CRACK_MAP = ROOT / "studies" / "crack_map.toml"
BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
RAN_RE = re.compile(r"ran (\d+) of (\d+) variants \((\d+) were already in")
# docs/physics.md: the mean critical density of d111 (mA/cm2) at -10 / 0 / 25 / 45 °C
DOCUMENTED_CRITICAL_MA_CM2 = {-10.0: 0.08, 0.0: 0.14, 25.0: 0.5, 45.0: 1.2}


def sweep(*args, cwd=None, timeout=600):
    done = subprocess.run([BMS_TWIN, "sweep", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ran_counts(stdout):
    ran, total, before = map(int, RAN_RE.search(stdout).groups())
    return ran, total, before


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("crack_map_1")
    done = sweep(CRACK_MAP, "--out", out, "--workers", "1")
    assert "on 1 process" in done.stdout
    return out, done.stdout


def test_the_crack_map_reproduces_the_critical_densities_from_its_table(one_process):
    out, stdout = one_process
    table = read_table(out)
    assert len(table) == 5 * 41 and (table["error"] == "").all()
    assert table.attrs["units"]["protocol.density"] == "mA/cm2"
    assert table.attrs["units"]["crack_time_s"] == "s"
    boundary = crack_boundary(table, x="protocol.density", y="ambient_c").set_index("ambient_c")
    cell = Cell(load_parameter_set("d111"))
    for ambient_c in (-10.0, 0.0, 10.0, 25.0, 45.0):
        critical = cell.critical_current_A_cm2(ambient_c) * 1e3
        row = boundary.loc[ambient_c]
        assert row["onset"] == pytest.approx(critical, rel=0.01), ambient_c
        # no variant below the critical density cracked; the grid brackets the boundary
        at = table[table["ambient_c"] == ambient_c]
        assert not at[at["protocol.density"] < critical]["layer_cracked"].any()
        assert row["lowest_cracked"] > critical and row["highest_intact"] < row["lowest_cracked"]
        if ambient_c in DOCUMENTED_CRITICAL_MA_CM2:
            assert row["onset"] == pytest.approx(DOCUMENTED_CRITICAL_MA_CM2[ambient_c], rel=0.05)
    # cracks come sooner the harder the glass is pushed
    cold = table[(table["ambient_c"] == 10.0) & table["layer_cracked"]].sort_values("protocol.density")
    assert cold["crack_time_s"].is_monotonic_decreasing and len(cold) > 10
    assert "ambient_c = 10: cracks from 0.243" in stdout
    assert (out / "crack_map.png").stat().st_size > 10_000


def test_one_process_every_core_and_a_dask_cluster_give_identical_tables(one_process, tmp_path):
    reference = pd.read_parquet(one_process[0] / "results.parquet")
    every_core = sweep(CRACK_MAP, "--out", tmp_path / "all")
    cores = available_cores()
    assert ("on %d local processes" % cores if cores > 1 else "on 1 process") in every_core.stdout
    cluster = sweep(CRACK_MAP, "--out", tmp_path / "dask", "--dask", "--workers", "2")
    assert "Dask LocalCluster (2 workers)" in cluster.stdout
    for out in ("all", "dask"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / out / "results.parquet"), reference,
                                      check_exact=True)


def _big_study(tmp_path):
    # the crack map on a finer grid: long enough to be killed part way
    text = CRACK_MAP.read_text().replace("num = 41", "num = 160").replace("sample_s = 2.0", "sample_s = 20.0")
    path = tmp_path / "fine.toml"
    path.write_text(text)
    return path, len(load_study(path).variables[1].grid) * 5


def _stored_rows(out):
    return sum(pq.read_metadata(p).num_rows for p in (out / "store").glob("*.parquet"))


def _wait_for_parts(run, out, n_parts):
    """Until the running sweep has stored n_parts files (or ended, or 2 minutes)."""
    deadline = time.monotonic() + 120
    while len(list((out / "store").glob("*.parquet"))) < n_parts and run.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_killed_run_resumes_with_only_the_missing_variants(tmp_path):
    study, total = _big_study(tmp_path)
    out = tmp_path / "killed"
    run = subprocess.Popen([BMS_TWIN, "sweep", study, "--out", out, "--workers", "1", "--batch", "8",
                            "--flush-s", "0", "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_parts(run, out, 3)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "results.parquet").exists()
    stored = _stored_rows(out)
    assert 0 < stored < total

    resumed = sweep(study, "--out", out, "--no-plots")
    assert ran_counts(resumed.stdout) == (total - stored, total, stored)
    again = sweep(study, "--out", out, "--no-plots")
    assert "all %d variants already in" % total in again.stdout
    assert ran_counts(again.stdout) == (0, total, total)

    whole = tmp_path / "whole"
    sweep(study, "--out", whole, "--workers", "1", "--no-plots")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"),
                                  pd.read_parquet(whole / "results.parquet"), check_exact=True)
    assert len(list((out / "store").glob("*.parquet"))) == 1      # folded when the run ended


def test_sigterm_stores_what_is_done_and_says_how_far_it_got(tmp_path):
    study, total = _big_study(tmp_path)
    out = tmp_path / "stopped"
    run = subprocess.Popen([BMS_TWIN, "sweep", study, "--out", out, "--workers", "1", "--batch", "8",
                            "--flush-s", "0", "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    _wait_for_parts(run, out, 2)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    done = int(re.search(r"interrupted: (\d+) of %d variants stored" % total, stderr).group(1))
    assert 0 < done < total
    assert len(read_table(out)) == done == _stored_rows(out)


SMALL_CLOSED_LOOP = """
[study]
kind = "closed_loop"
draws = 2
figures = ["final_state", "faults", "formation_time_s", "formation_peak_density_uA_cm2",
           "formation_counted_uAh", "layer_cracked"]
[firmware.config]
# a 20 µAh formation instead of 200: the same firmware path, a tenth of the ticks
target_inventory_uah = 20
save_interval_uas = 72000
[vary.config.nucleation_ua_cm2]
unit = "uA/cm2"
values = [5, 20]
"""


def test_a_firmware_config_value_varies_and_the_firmware_follows_it(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(SMALL_CLOSED_LOOP)
    report = run_study(load_study(path), tmp_path / "out", workers=1, log=lambda line: None)
    assert report.n_ran == 4 and report.n_failed == 0
    table = read_table(tmp_path / "out")
    assert table["final_state"].tolist() == ["READY"] * 4 and (table["faults"] == "").all()
    assert not table["layer_cracked"].any()
    assert table["formation_counted_uAh"].tolist() == pytest.approx([20.0] * 4, rel=5e-3)
    # nucleation (1.67 µAh/cm2 on d111's 1 cm2) at 5 instead of 20 µA/cm2 takes 902 s longer
    slow, fast = (table[table["config.nucleation_ua_cm2"] == d]["formation_time_s"].mean() for d in (5, 20))
    nucleation_uah = load_parameter_set("d111").design["nucleation_charge_uAh_cm2"]
    assert slow - fast == pytest.approx(nucleation_uah * 3600 * (1 / 5 - 1 / 20), rel=0.05)
    # plating itself follows the firmware's derating table: 100 µA/cm2 at 25 °C
    assert table["formation_peak_density_uA_cm2"].max() <= 101.0
    assert table["seed"].nunique() == 2


def test_a_variant_the_twin_refuses_gets_its_error_and_the_rest_run(tmp_path):
    # each value alone is a valid cell; 5 mol/L Li in 2 mol/L S is not (Li:S beyond the OCV table)
    text = ("[study]\nkind = 'open_loop'\nfigures = ['plated_end_uAh']\n"
            "[protocol]\ntext = 'Charge at 10 uA for 1 minute'\n"
            "[vary.cell.lithium_mol_L]\nunit = 'mol/L'\nvalues = [0.75, 5.0]\n"
            "[vary.cell.sulfur_mol_L]\nunit = 'mol/L'\nvalues = [3.0, 2.0]\n")
    path = tmp_path / "bad_mix.toml"
    path.write_text(text)
    report = run_study(load_study(path), tmp_path / "out", workers=1, log=lambda line: None)
    assert (report.n_ran, report.n_failed) == (4, 1)
    table = read_table(tmp_path / "out")
    failed = table[table["error"] != ""]
    assert failed[["cell.lithium_mol_L", "cell.sulfur_mol_L"]].values.tolist() == [[5.0, 2.0]]
    assert "ParameterError" in failed["error"].iloc[0] and "lithium_mol_L" in failed["error"].iloc[0]
    assert failed["plated_end_uAh"].isna().all()
    assert (table[table["error"] == ""]["plated_end_uAh"] > 0.16).all()


def test_a_sweep_with_a_failed_variant_says_so_and_exits_1(tmp_path):
    path = tmp_path / "bad_mix.toml"
    path.write_text("[study]\nkind = 'open_loop'\nfigures = ['plated_end_uAh']\n"
                    "[protocol]\ntext = 'Charge at 10 uA for 1 minute'\n"
                    "[vary.cell.lithium_mol_L]\nunit = 'mol/L'\nvalues = [0.75, 5.0]\n"
                    "[vary.cell.sulfur_mol_L]\nunit = 'mol/L'\nvalues = [2.0]\n")
    done = subprocess.run([BMS_TWIN, "sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1",
                           "--no-plots"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bms-twin sweep: 1 of 2 variants failed" in done.stderr and "Traceback" not in done.stderr
    assert len(read_table(tmp_path / "out")) == 2       # the good variant is stored all the same


def test_a_worker_with_another_model_is_refused_before_it_stores_anything():
    from twin.study.evaluate import Job, WorkerModelError, run_batch

    job = Job(load_study(CRACK_MAP))
    job.model = "0" * 64          # as planned by a client with another build
    with pytest.raises(WorkerModelError, match="another build of the twin core or firmware"):
        run_batch(job, [("k", {"ambient_c": 25.0, "protocol.density": 0.1})])


def test_a_running_dask_scheduler_given_by_address_runs_the_same_study(tmp_path):
    """`--scheduler tcp://HOST:PORT`: a scheduler and two workers started as their
    own processes (dask's CLI, as on a cluster), on this machine's loopback."""
    text = CRACK_MAP.read_text().replace("values = [-10, 0, 10, 25, 45]", "values = [0, 25]") \
        .replace("num = 41", "num = 12")
    study = tmp_path / "small.toml"
    study.write_text(text)
    dask_cli = str(Path(sys.executable).parent / "dask")
    address_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(address_file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = subprocess.Popen([dask_cli, "worker", "--scheduler-file", str(address_file), "--nthreads", "1",
                                    "--nworkers", "2", "--no-dashboard"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        address = json.loads(address_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        done = sweep(study, "--out", tmp_path / "cluster", "--scheduler", address)
        assert "on Dask scheduler %s" % address in done.stdout
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    run_study(load_study(study), tmp_path / "here", workers=1, plots=False, log=lambda line: None)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cluster" / "results.parquet"),
                                  pd.read_parquet(tmp_path / "here" / "results.parquet"), check_exact=True)
