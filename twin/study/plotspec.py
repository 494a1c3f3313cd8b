"""Which plots a study draws, from its [plots] table or from what it varies.

    crack_map      = { x = "protocol.density", y = "ambient_c" }   needs crack_time_s
    formation_time = { x = "formation_peak_density_uA_cm2" }       needs formation_time_s
    histograms     = ["formation_time_s", "plated_end_uAh"]        numeric figures

Without [plots]: a crack map when the study collects crack_time_s over two grids
(ambient_c on y when it is one of them), formation time when it collects
formation_time_s, histograms of every numeric figure when it draws a lot.
"""
from __future__ import annotations

from twin.study.figures import FIGURES

PLOTS = ("crack_map", "formation_time", "histograms")
_NUMERIC = ("float", "int")


def _error(key, value, why):
    from twin.study.spec import StudyError

    return StudyError(key, value, why)


def _numeric_figures(study) -> list:
    return [f for f in study.figures if FIGURES[f].dtype in _NUMERIC]


def _default(study) -> dict:
    plots = {}
    grids = [v.key for v in study.grids]
    if "crack_time_s" in study.figures and len(grids) >= 2:
        y = "ambient_c" if "ambient_c" in grids else grids[1]
        protocol = [k for k in grids if k.startswith("protocol.") and k != y]
        x = protocol[0] if protocol else next(k for k in grids if k != y)
        plots["crack_map"] = {"x": x, "y": y}
    if "formation_time_s" in study.figures:
        if "formation_peak_density_uA_cm2" in study.figures:
            plots["formation_time"] = {"x": "formation_peak_density_uA_cm2"}
        elif study.variables:
            plots["formation_time"] = {"x": study.variables[0].key}
    if study.draws > 1 and _numeric_figures(study):
        plots["histograms"] = _numeric_figures(study)
    return plots


def read_plots(study, table) -> dict:
    if table is None:
        return _default(study)
    if not isinstance(table, dict):
        raise _error("plots", table, "a table with any of %s" % ", ".join(PLOTS))
    inputs = [v.key for v in study.variables]
    grids = [v.key for v in study.grids]
    plots = {}
    for name, spec in table.items():
        key = "plots." + name
        if name == "crack_map":
            if not isinstance(spec, dict) or set(spec) != {"x", "y"}:
                raise _error(key, spec, "a table { x, y } of two grid inputs")
            for axis in ("x", "y"):
                if spec[axis] not in grids:
                    raise _error("%s.%s" % (key, axis), spec[axis], "a grid input of this study: %s"
                                 % (", ".join(grids) or "(none)"))
            if spec["x"] == spec["y"]:
                raise _error(key, spec, "two different inputs")
            if "crack_time_s" not in study.figures:
                raise _error(key, spec, "crack_time_s among study.figures")
        elif name == "formation_time":
            if not isinstance(spec, dict) or set(spec) != {"x"}:
                raise _error(key, spec, "a table { x } naming an input or a figure")
            if spec["x"] not in inputs and spec["x"] not in _numeric_figures(study):
                raise _error(key + ".x", spec["x"], "an input or a numeric figure of this study")
            if "formation_time_s" not in study.figures:
                raise _error(key, spec, "formation_time_s among study.figures")
        elif name == "histograms":
            numeric = _numeric_figures(study)
            if not isinstance(spec, list) or not spec or any(f not in numeric for f in spec):
                raise _error(key, spec, "a list of numeric figures of this study: %s" % ", ".join(numeric))
        else:
            raise _error(key, spec, "unknown plot; expected one of %s" % ", ".join(PLOTS))
        plots[name] = spec
    return plots
