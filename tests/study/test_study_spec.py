"""Study files: what is accepted, what is refused (by key, with what was expected),
and the list of figures shared with docs/studies.md.
Run: .venv/bin/python -m pytest tests/study/test_study_spec.py -q
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.study import FIGURES, StudyError, load_study
from twin.study.units import protocol_quantity

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "studies"
BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))

OPEN = """
[study]
kind = "open_loop"
[protocol]
text = "Charge at {density} for 10 minutes"
[vary.protocol.density]
unit = "mA/cm2"
values = [0.1, 0.2]
"""


def study_from(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_study(path)


def test_the_example_studies_load_with_the_variants_they_describe():
    crack = load_study(STUDIES / "crack_map.toml")
    assert crack.kind == "open_loop" and crack.base.name == "d111"
    assert [v.key for v in crack.grids] == ["ambient_c", "protocol.density"]
    assert crack.grids[0].grid.tolist() == [-10.0, 0.0, 10.0, 25.0, 45.0]
    assert "crack_map" in crack.plots
    lot = load_study(STUDIES / "formation_spread.toml")
    assert lot.kind == "closed_loop" and lot.draws == 200 and not lot.grids
    spreads = {v.key: v for v in lot.spreads}
    area = spreads["cell.area_cm2"].params
    assert area["low"] == pytest.approx(0.8) and area["high"] == pytest.approx(1.2)
    assert set(lot.plots) == {"formation_time", "histograms"}


def test_a_cell_toml_beside_the_study_is_the_base(tmp_path):
    shutil.copy(ROOT / "twin" / "parameters" / "d111.toml", tmp_path / "mine.toml")
    study = study_from(tmp_path, OPEN.replace('kind = "open_loop"', 'kind = "open_loop"\ncell = "mine.toml"'))
    assert study.base.path == (tmp_path / "mine.toml").resolve()


def test_placeholders_become_exact_si_quantities_over_the_cells_area():
    assert protocol_quantity(0.1, "mA/cm2", 1.0) == "0.0001 A"
    assert protocol_quantity(0.1, "mA/cm2", 0.8) == "8e-05 A"
    assert protocol_quantity(15, "min", 2.0) == "900.0 s"
    assert protocol_quantity(2.6, "V", 2.0) == "2.6 V"


BAD = [
    ("[study]\nkind = 'open'\n", "study.kind", "one of open_loop, closed_loop"),
    ("[study]\nkind = 'open_loop'\n", "protocol", "needs [protocol]"),
    ("[stuff]\n", "stuff", "unknown key; expected one of study, protocol"),
    (OPEN + "[vary.cell.layer_thickness_A]\nunit = 'nm'\nvalues = [1000]\n",
     "vary.cell.layer_thickness_A.unit", "'angstrom' expected"),
    (OPEN + "[vary.cell.layer_thickness]\nunit = 'angstrom'\nvalues = [1000]\n",
     "vary.cell.layer_thickness", "not a cell parameter"),
    (OPEN + "[vary.cell.layer_thickness_A]\nunit = 'angstrom'\nnormal = { rel_sd = 0.5 }\n",
     "vary.cell.layer_thickness_A", "which the cell refuses"),
    (OPEN + "[vary.cell.area_cm2]\nunit = 'cm2'\nvalues = [1.0]\nuniform = { spread = 0.1 }\n",
     "vary.cell.area_cm2", "exactly one of values"),
    (OPEN + "[vary.cell.area_cm2]\nunit = 'cm2'\nuniform = { low = 1.0 }\n",
     "vary.cell.area_cm2.uniform", "{ low, high } or { spread } expected"),
    (OPEN + "[vary.cell.area_cm2]\nunit = 'cm2'\nlinspace = { start = 1.0, stop = 2.0, num = 1 }\n",
     "vary.cell.area_cm2.linspace.num", "an int >= 2"),
    (OPEN + "[vary.cell.area_cm2]\nunit = 'cm2'\nlogspace = { start = 0.0, stop = 2.0, num = 3 }\n",
     "vary.cell.area_cm2.logspace.start", "a number > 0"),
    (OPEN + "[vary.cell.area_cm2]\nunit = 'cm2'\nvalues = [1.0, 1.0]\n",
     "vary.cell.area_cm2.values", "each value once"),
    (OPEN + "[vary.ambient_c]\nunit = 'degC'\nvalues = [25, 300]\n", "vary.ambient_c", "outside -120..220"),
    (OPEN + "[vary.ambient_c]\nunit = 'K'\nvalues = [300]\n", "vary.ambient_c.unit", "'degC' expected"),
    (OPEN + "[vary.protocol.other]\nunit = 'uA'\nvalues = [1]\n", "vary.protocol.other",
     "a placeholder {name} in the protocol text"),
    (OPEN.replace("{density}", "{speed}"), "protocol.text", "a placeholder needs a [vary.protocol.<name>]"),
    (OPEN.replace("'mA/cm2'", "'parsecs'").replace('"mA/cm2"', '"parsecs"'), "vary.protocol.density.unit",
     "a protocol placeholder's unit"),
    (OPEN.replace("Charge at", "Chrge at"), "protocol.text (line 1)", "Charge, Discharge, Rest, Hold or Repeat"),
    (OPEN.replace("for 10 minutes", "until {density}"), "protocol.text (line 1)", "a voltage"),
    (OPEN.replace('kind = "open_loop"', 'kind = "open_loop"\ndraws = 5'), "study.draws",
     "model is deterministic"),
    (OPEN.replace('kind = "open_loop"', 'kind = "open_loop"\nfigures = ["final_state"]'), "study.figures",
     "closed_loop studies give it"),
    (OPEN + "[vary.config.formation_ua_cm2]\nunit = 'uA/cm2'\nvalues = [50]\n", "vary.config.formation_ua_cm2",
     "only in closed-loop"),
    ("[study]\nkind = 'closed_loop'\n[vary.config.formation_ua_cm2]\nunit = 'mA/cm2'\nvalues = [1]\n",
     "vary.config.formation_ua_cm2.unit", "'uA/cm2' expected"),
    ("[study]\nkind = 'closed_loop'\n[vary.config.formation_ua_cm2]\nunit = 'uA/cm2'\nvalues = [50.5]\n",
     "vary.config.formation_ua_cm2.values", "whole numbers"),
    ("[study]\nkind = 'closed_loop'\n[vary.config.auto_form]\nunit = '1'\nvalues = [0]\n",
     "vary.config.auto_form", "not an integer bmsfw.config.Config field"),
    ("[study]\nkind = 'closed_loop'\n[vary.config.formation_ua_cm2]\nunit = 'uA/cm2'\nvalues = [0, 50]\n",
     "vary.config.formation_ua_cm2", "must be > 0"),
    ("[study]\nkind = 'closed_loop'\n[firmware.config]\nno_such = 3\n", "firmware.config.no_such",
     "unknown field"),
    ("[study]\nkind = 'closed_loop'\n[protocol]\ntext = 'Rest for 1 hour'\nsample_s = 1\n",
     "protocol.sample_s", "only in open-loop"),
    ("[study]\nkind = 'closed_loop'\n[plots]\ncrack_map = { x = 'ambient_c', y = 'ambient_c' }\n",
     "plots.crack_map.x", "a grid input of this study"),
    ("[study]\nkind = 'closed_loop'\ncell = 'd112'\n", "study.cell", "valid sets: al_wetting_layer"),
]


@pytest.mark.parametrize("text, key, expected", BAD, ids=[b[1] for b in BAD])
def test_a_bad_study_is_refused_naming_the_key_and_what_was_expected(tmp_path, text, key, expected):
    with pytest.raises(StudyError) as caught:
        study_from(tmp_path, text)
    assert caught.value.field == key
    assert expected in caught.value.why
    assert "\n" not in str(caught.value)


def test_the_cli_refuses_a_bad_study_in_one_line_with_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text(OPEN + "[vary.cell.area_cm2]\nunit = 'mm2'\nvalues = [1.0]\n")
    for study, says in (("bad.toml", "vary.cell.area_cm2.unit='mm2': 'cm2' expected"),
                        ("missing.toml", "no such study file")):
        done = subprocess.run([BMS_TWIN, "sweep", study, "--out", "out"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines == ["bms-twin sweep: %s: " % study + lines[0].split(": ", 2)[2]], done.stderr
        assert says in lines[0]
    assert not (tmp_path / "out").exists()


def test_docs_list_exactly_the_figures_the_code_knows():
    text = (ROOT / "docs" / "studies.md").read_text()
    table = text[text.index("<!-- figures -->"):text.index("<!-- /figures -->")]
    documented = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert documented == list(FIGURES)
    for name, figure in FIGURES.items():
        row = next(line for line in table.splitlines() if line.startswith("| `%s` |" % name))
        assert "| %s |" % (figure.unit or "-") in row, row
