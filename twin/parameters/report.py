"""What `bms-twin params NAME` prints: every number of a parameter set with its unit
and source, the firmware's design table, the default cycler channel the set gets in
`bms-twin simulate`, and the citations -- as text for a person, or as JSON."""
from __future__ import annotations

import json

from twin.parameters import CELL_PARAM_FIELDS, ParameterSet


def _number(value) -> str:
    return "%.6g" % value


def _rows(names, values, units, sources, prefix=""):
    width = max(len(prefix + n) for n in names)
    for name in names:
        shown = "%s %s" % (_number(values[name]), units[name])
        yield "  %-*s  %-16s  %s" % (width, prefix + name, shown, sources[name])


def text_report(params: ParameterSet, cycler) -> str:
    values, units, sources = params.values, params.units, params.sources
    lines = ["%s: %s%s" % (params.name, params.path,
                           "  (based on %s)" % " -> ".join(params.based_on) if params.based_on else "")]
    if params.overrides:
        lines.append("overridden: %s" % ", ".join(params.overrides))
    lines.append("cell (c_core cell_params_t):")
    scalars = [n for n in CELL_PARAM_FIELDS if n not in ("n_ocv_points", "ocv_x", "ocv_V")]
    lines.extend(_rows(scalars, values, units, sources))
    lines.append("  ocv table, %d points  %s" % (params.n_ocv_points, sources["ocv_x"]))
    lines.append("    x (Li:S) [%s]: %s" % (units["ocv_x"], ", ".join(_number(x) for x in values["ocv_x"])))
    lines.append("    V (vs Li/Li+) [%s]: %s" % (units["ocv_V"], ", ".join(_number(v) for v in values["ocv_V"])))
    lines.append("design (the firmware's configuration, twin.firmware_config):")
    lines.extend(_rows(list(params.design), params.design, params.design_units, params.design_sources,
                       prefix="design."))
    lines.append("cycler channel of `bms-twin simulate` (%s; --cycler FILE overrides):" % cycler.name)
    lines.extend(_rows(list(cycler.values), cycler.values, cycler.units, cycler.sources))
    lines.append("citations (twin/parameters/citations.bib): %s" % (", ".join(params.citations) or "none"))
    return "\n".join(lines)


def json_report(params: ParameterSet, cycler) -> str:
    def entries(values, units, sources):
        return {name: {"value": values[name], "unit": units[name], "source": sources[name]} for name in values}

    return json.dumps({
        "name": params.name, "path": str(params.path), "based_on": list(params.based_on),
        "values": entries(params.values, params.units, params.sources),
        "design": entries(params.design, params.design_units, params.design_sources),
        "cycler": entries(cycler.values, cycler.units, cycler.sources),
        "citations": list(params.citations),
    }, indent=2)
