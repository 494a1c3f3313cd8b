"""The inputs of `bms-twin run`, checked before anything starts (twin/cli.py runs
it): the options argparse lets through, the cell, the duty protocol with its bench
steps, and the saved bench of --from (twin/saved_bench.py), resumed.
"""
from __future__ import annotations


def check_run(args):
    """-> (params, duty, out, bench): every input of `run`, checked before anything
    starts; bench is the saved one of --from, resumed, or None."""
    from twin import options
    from twin.cli import load_cell, load_protocol
    from twin.run import duty_for
    from twin.saved_bench import SavedBenchError, read_saved, resume_bench

    saved = None
    if args.from_dir is not None:
        saved = read_saved(args.from_dir)
        for name, value in (("--ambient-c", args.ambient_c), ("--seed", args.seed)):
            if value is not None:
                raise SavedBenchError(args.from_dir, "%s comes from the saved bench (its ambient, its board's "
                                      "noise generator); leave %s out, or change the ambient with a "
                                      "'Set ambient to <T>' step" % (name, name))
    else:
        args.ambient_c = 25.0 if args.ambient_c is None else args.ambient_c
        args.seed = 0 if args.seed is None else args.seed
        options.ambient_c(args.ambient_c)
        options.seed(args.seed)
    for cut_s in args.power_cut_at:
        options.positive("--power-cut-at", cut_s)
    options.positive("--off-s", args.off_s)
    if args.speed is not None:
        options.positive("--speed", args.speed, unit="times real time")
    options.device_id(args.device_id)
    out = options.out_dir(args.out)
    if args.cell is None and saved:
        try:
            params = load_cell(saved["cell"])
        except ValueError as error:     # a refusal of the saved name (ParameterError, OptionError), said as --from
            raise SavedBenchError(args.from_dir, "%s: its cell %r: %s" % ("bench.json", saved["cell"], error)) from None
    else:
        params = load_cell(args.cell or "d111")
    bench = resume_bench(args.from_dir, params) if saved else None
    seed = bench.seed if bench else args.seed
    if args.device_id is None:
        default_id = f"{params.name}-{seed:04d}"
        try:
            options.device_id(default_id)
        except options.OptionError:
            raise options.OptionError("--device-id", None, f"the default {default_id!r} (<cell>-<seed>) "
                                      "is no MQTT device id; give one of [A-Za-z0-9_-]") from None
    # the default duty: D111's, at the seed's current densities on this cell's area
    duty = load_protocol(args.protocol) if args.protocol else duty_for(params)
    from twin.bench import Bench
    from twin.scenario import check_bench

    try:
        check_bench(duty, (bench or Bench.build(params)).board)
    except ValueError as error:
        raise options.OptionError("--protocol", args.protocol, getattr(error, "brief", str(error))) from None
    return params, duty, out, bench
