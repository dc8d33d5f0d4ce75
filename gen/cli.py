"""The ``accelgen`` command: ``emit`` Verilog and manifests, ``bench`` the blocks in RTL simulation."""

import argparse
import sys

from . import __version__
from .config import ConfigError, load_config

__all__ = ["main"]

BENCHES = {
    "gemm": ("sim.bench.gemm", "GEMM engine: cycles, ideal cycles and utilization per mode"),
    "vsq": ("sim.bench.vsq", "per-vector scaled quantization (VS-Quant): SQNR table and PNG, "
                             "digits MLP accuracy, from the golden models"),
    "softmax": ("sim.bench.softmax", "softmax unit: error against internal widths (table, plot, "
                "Yosys cells), latency and throughput"),
}


def _cmd_emit(args):
    from .emit import render, write_atomically
    config = load_config(args.config)
    files = render(config)
    out = write_atomically(files, args.out)
    for name in sorted(files):
        print(out / name)
    return 0


def _cmd_bench(args):
    import importlib
    import json
    module = importlib.import_module(BENCHES[args.block][0])
    result = module.run(quick=args.quick, sim=args.sim)
    print(module.format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="accelgen",
        description="Generate synthesizable Verilog for ML-accelerator blocks from one configuration, "
                    "and measure it in RTL simulation.")
    parser.add_argument("--version", action="version", version=f"accelgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emit = sub.add_parser(
        "emit", help="write Verilog, a JSON manifest and a filelist per block",
        description="Write <top>.v, <top>.json (manifest: ports, stream fields, latency, "
                    "throughput) and <top>.f (filelist) for every block of the configuration. "
                    "The output folder is replaced whole; on an error nothing is written.")
    emit.add_argument("config", nargs="?", metavar="CONFIG.toml",
                      help="configuration file (default: the embedded default configuration)")
    emit.add_argument("--out", default="rtl_out", metavar="DIR",
                      help="output folder, replaced whole (default: rtl_out)")
    emit.set_defaults(func=_cmd_emit)

    bench = sub.add_parser(
        "bench", help="measure a block in RTL simulation and print a table",
        description="Run a block's benchmark in RTL simulation: " + "; ".join(
            f"{name}: {text}" for name, (_, text) in BENCHES.items()) + ".")
    bench.add_argument("block", choices=sorted(BENCHES), help="block to measure")
    bench.add_argument("--quick", action="store_true",
                       help="a small size that finishes in about a minute (for CI)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    bench.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                       help="simulator (default: $SIM, else verilator)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"accelgen: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"accelgen: error: {exc.filename}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
