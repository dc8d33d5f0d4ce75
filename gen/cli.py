"""The ``accelgen`` command: ``emit`` Verilog and manifests, ``synth`` them with Yosys, ``bench`` the
blocks in RTL simulation."""

import argparse
import sys

from . import __version__
from .config import ConfigError, load_config
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


def _cmd_emit(args):
    from .emit import constraint_files, render, write_atomically
    config = load_config(args.config)
    files = render(config)
    out = write_atomically(files, args.out)
    for name in sorted(files):
        print(out / name)
    if args.constraints:
        constraints = constraint_files(files)
        out = write_atomically(constraints, args.constraints)
        for name in sorted(constraints):
            print(out / name)
    return 0


def _cmd_bench(args):
    import importlib
    import inspect
    import json
    import os
    module = importlib.import_module(BENCHES[args.block][0])
    kwargs = {}
    if "out_dir" in inspect.signature(module.run).parameters:
        # Files beside the results: the folder of --json, else bench_out/.
        kwargs["out_dir"] = os.path.dirname(os.path.abspath(args.json)) if args.json else "bench_out"
    result = module.run(quick=args.quick, sim=args.sim, **kwargs)
    print(module.format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
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


def _cmd_demo(args):
    import json

    from sim.bench import demo
    names = list(DEMOS) if args.name == "all" else [args.name]
    results = {}
    for name in names:
        results[name] = demo.run(name, quick=args.quick, sim=args.sim)
        print(demo.format_table(name, results[name]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results if args.name == "all" else results[args.name], f, indent=2,
                      sort_keys=True)
            f.write("\n")
    return 0 if all(r["passed"] for r in results.values()) else 1


def _cmd_synth(args):
    import json

    from . import synth
    config = load_config(args.config)
    result = synth.run(config, args.target, fmax=not args.no_fmax, device=args.device, seed=args.seed)
    print(synth.format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    status = 0 if all(top["check_passed"] for top in result["tops"]) else 1
    if args.update_baseline:
        with open(args.update_baseline, "w", encoding="utf-8") as f:
            json.dump(synth.baseline_of(result), f, indent=2, sort_keys=True)
            f.write("\n")
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
                    "The output folder is replaced whole; on an error nothing is written.")
    emit.add_argument("config", nargs="?", metavar="CONFIG.toml",
                      help="configuration file (default: the embedded default configuration)")
    emit.add_argument("--out", default="rtl_out", metavar="DIR",
                      help="output folder, replaced whole (default: rtl_out)")
    emit.add_argument("--constraints", metavar="DIR",
                      help="also write the SDC and XDC files into DIR, replaced whole "
                           "(the repository keeps the default configuration's in constraints/)")
    emit.set_defaults(func=_cmd_emit)

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
    synth.set_defaults(func=_cmd_synth)

    bench = sub.add_parser(
        "bench", help="measure a block in RTL simulation and print a table",
        description="Run a block's benchmark in RTL simulation: " + "; ".join(
            f"{name}: {text}" for name, (_, text) in BENCHES.items()) + ".")
    bench.add_argument("block", choices=sorted(BENCHES), help="block to measure")
    _run_options(bench, "a small size that finishes in about a minute (for CI)")
    bench.set_defaults(func=_cmd_bench)

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
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"accelgen: error: {exc}", file=sys.stderr)
        return 2
    except ToolMissing as exc:
        print(f"accelgen: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"accelgen: error: {exc.filename}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
