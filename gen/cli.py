"""The ``accelgen`` command: ``emit`` Verilog and manifests, ``synth`` them with Yosys, ``bench`` the
blocks in RTL simulation."""

import argparse
import os
import sys

from . import __version__, outdir
from .config import ConfigError, load_config
from .outdir import OutputError
from .synth import ToolMissing

__all__ = ["main"]

BENCHES = {
    "gemm": ("sim.bench.gemm", "GEMM engine: cycles, ideal cycles and utilization per mode"),
    "vsq": ("sim.bench.vsq", "per-vector scaled quantization (VS-Quant): SQNR table and PNG, "
                             "digits MLP accuracy, from the golden models"),
    "vsq-rtl": ("sim.bench.vsq_rtl", "the digits MLP's VSQ GEMMs (W4A4, W4A8, V=16, M=4) through "
                "the RTL GEMM engine: mismatches against the golden model, accuracy, cycles"),
    "softmax": ("sim.bench.softmax", "softmax unit: error against internal widths (table, plot, "
                "Yosys cells), latency and throughput"),
    "noc": ("sim.bench.noc", "mesh NoC: latency against offered load and accepted throughput"),
    "noc-stress": ("sim.bench.noc_stress", "mesh NoC at saturation for 10^6 cycles (4x4) and 10^5 "
                   "(8x8) with synthesizable traffic generators, checkers and a watchdog"),
    "area": ("sim.bench.area", "Yosys cells and iCE40 LUTs per mode, of VS-Quant and per-vector "
             "scaling, per router port and VC and per softmax lane, and nextpnr-ice40 fmax (no "
             "simulation; needs yosys, and nextpnr-ice40 for fmax)"),
}


BENCH_FILES = {
    "noc": ("noc_latency.csv", "noc_table.txt", "noc_latency.png"),
    "vsq": ("vsq_sqnr.png",),
    "softmax": ("softmax_error.png",),
}
"""Files a bench writes beside its results (in :func:`_bench_out_dir`)."""


def _json_text(value):
    import json
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _check_emit(args):
    keep = [args.config]
    outdir.check_folder(args.out, what="--out folder", keep=keep)
    if args.constraints is not None:
        outdir.check_folder(args.constraints, what="--constraints folder", keep=keep)
        if _same_path(args.constraints, args.out):
            raise OutputError(args.constraints, "is the --out folder too; give --constraints "
                                                "another folder")


def _same_path(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def _cmd_emit(args):
    from .emit import constraint_files, render
    config = load_config(args.config)
    files = render(config)
    constraints = constraint_files(files) if args.constraints is not None else {}
    keep = [args.config]
    # Both folders are checked with the names they will get before either is written.
    outdir.check_folder(args.out, what="--out folder", keep=keep, names=sorted(files))
    if args.constraints is not None:
        outdir.check_folder(args.constraints, what="--constraints folder", keep=keep,
                            names=sorted(constraints))
    out = outdir.write_folder(files, args.out, what="--out folder", keep=keep)
    for name in sorted(files):
        print(out / name)
    if args.constraints is not None:
        out = outdir.write_folder(constraints, args.constraints, what="--constraints folder",
                                  keep=keep)
        for name in sorted(constraints):
            print(out / name)
    return 0


def _bench_out_dir(args):
    """Where a bench writes its plots and tables: ``$ACCELGEN_BENCH_OUT``, else the folder of
    ``--json``, else ``bench_out``."""
    env = os.environ.get("ACCELGEN_BENCH_OUT")
    if env is not None:
        return env
    if args.json:
        return os.path.dirname(os.path.abspath(args.json))
    return "bench_out"


def _check_bench(args):
    if args.json is not None:
        outdir.check_file(args.json, what="--json file")
    names = BENCH_FILES.get(args.block, ())
    if names:
        folder = _bench_out_dir(args)
        what = "bench output folder" + (" (ACCELGEN_BENCH_OUT)"
                                        if "ACCELGEN_BENCH_OUT" in os.environ else "")
        path = outdir.check_folder_for_files(folder, names, what=what)
        if args.json is not None and os.path.abspath(args.json) in [str(path / n) for n in names]:
            raise OutputError(args.json, f"is the name of a file the {args.block} bench writes "
                                         f"itself; choose another name")
    _check_build_root()


def _check_build_root():
    from sim import runner
    runner.build_root(create=False)


def _cmd_bench(args):
    import importlib
    import inspect
    module = importlib.import_module(BENCHES[args.block][0])
    kwargs = {}
    names = BENCH_FILES.get(args.block, ())
    folder = _bench_out_dir(args)
    if "out_dir" in inspect.signature(module.run).parameters:
        kwargs["out_dir"] = folder
    if names:
        os.environ["ACCELGEN_BENCH_OUT"] = folder
    try:
        result = module.run(quick=args.quick, sim=args.sim, **kwargs)
    finally:
        written = [n for n in names if os.path.isfile(os.path.join(folder, n))]
        if written:
            outdir.record(folder, written)
    print(module.format_table(result))
    if args.json:
        outdir.write_file(args.json, _json_text(result), what="--json file")
    return 0


DEMOS = {
    "mlp": "the digits MLP (VS-Quant W4A4 and W4A8) on a 2 x 2 system of tiles through the "
           "RTL: logits against the golden model, accuracy beside float and per-channel, "
           "cycles per image",
    "attention": "one attention head (BMM1, softmax, BMM2; sequence 64) on a 2 x 2 system "
                 "through the RTL: bit-exactness, error against float64 attention, cycles, GEMM "
                 "utilization",
    "scaling": "one MLP layer on 1, 2 x 2 and 4 x 4 tiles: cycles and the fraction lost to "
               "communication (strong scaling)",
}


def _check_demo(args):
    if args.json is not None:
        outdir.check_file(args.json, what="--json file")
    _check_build_root()


def _cmd_demo(args):
    from sim.bench import demo
    names = list(DEMOS) if args.name == "all" else [args.name]
    results = {}
    for name in names:
        results[name] = demo.run(name, quick=args.quick, sim=args.sim)
        print(demo.format_table(name, results[name]))
    if args.json:
        outdir.write_file(args.json, _json_text(results if args.name == "all"
                                                else results[args.name]), what="--json file")
    return 0 if all(r["passed"] for r in results.values()) else 1


def _check_synth(args):
    keep = [args.config, args.baseline]
    if args.json is not None:
        outdir.check_file(args.json, what="--json file", keep=keep)
    if args.update_baseline is not None:
        outdir.check_file(args.update_baseline, what="--update-baseline file", keep=keep)
        if args.json is not None and _same_path(args.json, args.update_baseline):
            raise OutputError(args.update_baseline, "is the --json file too; give another name")


def _cmd_synth(args):
    import json

    from . import synth
    config = load_config(args.config)
    result = synth.run(config, args.target, fmax=not args.no_fmax, device=args.device, seed=args.seed)
    print(synth.format_table(result))
    keep = [args.config, args.baseline]
    if args.json:
        outdir.write_file(args.json, _json_text(result), what="--json file", keep=keep)
    status = 0 if all(top["check_passed"] for top in result["tops"]) else 1
    if args.update_baseline:
        outdir.write_file(args.update_baseline, _json_text(synth.baseline_of(result)),
                          what="--update-baseline file", keep=keep)
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as f:
            problems = synth.compare_baseline(result, json.load(f))
        for line in problems:
            print(f"QoR change: {line}")
        if problems:
            status = 1
        else:
            print(f"QoR within {synth.QOR_TOLERANCE:.0%} of {args.baseline}")
    return status


def _run_options(parser, quick_help):
    """``--quick``, ``--json`` and ``--sim``, which ``bench`` and ``demo`` share."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                        help="simulator (default: $SIM, else verilator)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="accelgen",
        description="Generate synthesizable Verilog for ML-accelerator blocks from one configuration, "
                    "and measure it in RTL simulation.")
    parser.add_argument("--version", action="version", version=f"accelgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emit = sub.add_parser(
        "emit", help="write Verilog, a JSON manifest, a filelist, constraints and a core file per block",
        description="Write <top>.v, <top>.json (manifest: ports, stream fields, latency, "
                    "throughput), <top>.f (filelist), <top>.sdc and <top>.xdc (clock, I/O delays, "
                    "reset false path from the [flow] section) and <top>.core (FuseSoC CAPI2) for "
                    "every block of the configuration, and accelgen_lint.vlt (Verilator waivers). "
                    "The output folder must be new, empty or written by accelgen before (it holds "
                    "a .accelgen-stamp file listing accelgen's files there); only those files "
                    "are replaced. On an error nothing is written.")
    emit.add_argument("config", nargs="?", metavar="CONFIG.toml",
                      help="configuration file (default: the embedded default configuration)")
    emit.add_argument("--out", default="rtl_out", metavar="DIR",
                      help="output folder: new, empty, or written by accelgen (default: rtl_out)")
    emit.add_argument("--constraints", metavar="DIR",
                      help="also write the SDC and XDC files into DIR (new, empty, or written by accelgen) "
                           "(the repository keeps the default configuration's in constraints/)")
    emit.set_defaults(func=_cmd_emit, check=_check_emit)

    synth = sub.add_parser(
        "synth", help="synthesize every block with Yosys; cells, flip-flops, LUTs and fmax",
        description="Synthesize each emitted top with the system Yosys and report cells by type, "
                    "flip-flops, latches, word-level multipliers and memories, and the result of "
                    "`check -assert` (exit status 1 if it fails). With --target ice40 also LUTs, "
                    "carries and RAM blocks, and, when nextpnr-ice40 is on PATH, the maximum clock "
                    "frequency of the block placed and routed in an out-of-context wrapper.")
    synth.add_argument("config", nargs="?", metavar="CONFIG.toml",
                       help="configuration file (default: the embedded default configuration)")
    synth.add_argument("--target", choices=["generic", "ice40"], default="generic",
                       help="generic: Yosys's gate library; ice40: Lattice iCE40 cells "
                            "(default: generic)")
    synth.add_argument("--device", choices=["hx8k", "up5k", "hx1k"], default="hx8k",
                       help="iCE40 device for place and route (default: hx8k)")
    synth.add_argument("--no-fmax", action="store_true",
                       help="with --target ice40: skip place and route")
    synth.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default: 1)")
    synth.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    synth.add_argument("--baseline", metavar="FILE",
                       help="compare cells, flip-flops and LUTs with a baseline; exit status 1 on a "
                            "change of more than 2%% (the default configuration's is "
                            "qor/baseline_generic.json)")
    synth.add_argument("--update-baseline", metavar="FILE",
                       help="write the figures as a new baseline to FILE")
    synth.set_defaults(func=_cmd_synth, check=_check_synth)

    bench = sub.add_parser(
        "bench", help="measure a block in RTL simulation and print a table",
        description="Run a block's benchmark in RTL simulation: " + "; ".join(
            f"{name}: {text}" for name, (_, text) in BENCHES.items()) + ".")
    bench.add_argument("block", choices=sorted(BENCHES), help="block to measure")
    _run_options(bench, "a small size that finishes in about a minute (for CI)")
    bench.set_defaults(func=_cmd_bench, check=_check_bench)

    demo = sub.add_parser(
        "demo", help="run real models on a multi-tile system through the RTL",
        description="Run a model on a system of tiles (GEMM engine with per-vector scaling, "
                    "softmax, scratchpad, network interface) joined by the mesh NoC, in RTL "
                    "simulation, and "
                    "check every result bit for bit against the system golden model: " + "; ".join(
                        f"{name}: {text}" for name, text in DEMOS.items()) + ". Exit status 1 "
                    "if any result differs from the golden model.")
    demo.add_argument("name", choices=[*DEMOS, "all"], help="what to run")
    _run_options(demo, "a small size that finishes in minutes")
    demo.set_defaults(func=_cmd_demo, check=_check_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from sim.runner import ToolMissing as SimToolMissing
    try:
        # Every output path is checked before any work starts.
        args.check(args)
        return args.func(args)
    except (ConfigError, OutputError, ToolMissing, SimToolMissing) as exc:
        print(f"accelgen: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"accelgen: error: {exc.filename}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
