"""Cycle-by-cycle comparison of two emissions of one top: the same long random stimulus on both, every
output compared in every cycle.

    python3 -m sim.equiv OLD_DIR NEW_DIR TOP [--cycles N] [--seed S]

``OLD_DIR`` and ``NEW_DIR`` hold ``TOP.v`` and ``TOP.json`` (two ``accelgen emit`` outputs, for
example before and after a change of the generator). A small Verilog testbench, written from the
manifest's ports, drives every input of the top with ``$random`` values (stream ``valid`` bits high
one cycle in two; payload fields named ``m``, ``n``, ``k`` kept small and ``mode`` within the
configured modes, so that commands are legal often enough to exercise the datapath), and prints all
outputs after every clock edge. Icarus Verilog runs it on the old design under ``-g2005`` and on the
new one under both ``-g2005`` and ``-g2012``; the traces must be identical. Outputs present in only
one of the two designs are left out. Exit status 0 when they match, 1 otherwise; the count of
cycles in which some output changed is printed, to show the stimulus is not idle.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["testbench", "compare"]


def _ports(manifest):
    return [(p["name"], p["direction"], p["width"]) for p in manifest["ports"]]


def _field_values(manifest, stream, width):
    """Verilog expression for a random payload of ``stream``, with small m, n, k and a legal mode."""
    entry = manifest.get("streams", {}).get(stream)
    words = -(-width // 32)
    base = "{" + ", ".join(["$random"] * words) + "}"
    if entry is None:
        return [f"NAME = {base};"]
    lines = [f"NAME = {base};"]
    modes = len(manifest.get("parameters", {}).get("modes", [])) or 1
    for f in entry["fields"]:
        lo, w = f["offset"], f["width"]
        if f["name"] in ("m", "n", "k"):
            lines.append(f"NAME[{lo + w - 1}:{lo}] = 1 + ($unsigned($random) % 6);")
        elif f["name"] == "mode":
            lines.append(f"NAME[{lo + w - 1}:{lo}] = $unsigned($random) % {modes};")
    return lines


def testbench(manifest, dut, cycles, seed, common_outputs):
    """Verilog of the testbench for module ``dut`` with the ports of ``manifest``."""
    ports = _ports(manifest)
    decl, drive, conns = [], [], []
    for name, direction, width in ports:
        rng = f"[{width - 1}:0] " if width > 1 else ""
        if name in ("clk", "rst"):
            continue
        if direction == "in":
            decl.append(f"  reg {rng}{name};")
            if name.endswith("__valid"):
                drive.append(f"      {name} = $random;")
            elif name.endswith("__payload"):
                stream = name[:-len("__payload")]
                for line in _field_values(manifest, stream, width):
                    drive.append("      " + line.replace("NAME", name))
            else:
                drive.append(f"      {name} = {{{', '.join(['$random'] * -(-width // 32))}}};")
        else:
            decl.append(f"  wire {rng}{name};")
        conns.append(f"    .{name}({name})")
    outs = [n for n, d, _ in ports if d == "out" and n in common_outputs]
    fmt = " ".join("%h" for _ in outs)
    inputs = [n for n, d, _ in ports if d == "in" and n not in ("clk", "rst")]
    zero = "\n".join(f"    {n} = 0;" for n in inputs)
    return f"""`timescale 1ns/1ps
module equiv_tb;
  reg clk = 0;
  reg rst = 1;
{chr(10).join(decl)}
  integer seed = {seed};
  integer cycle;
  {dut} dut (
    .clk(clk), .rst(rst),
{("," + chr(10)).join(conns)}
  );
  initial begin
{zero}
    for (cycle = 0; cycle < {cycles}; cycle = cycle + 1) begin
      #5 clk = 1;
      #1 $display("{fmt}", {", ".join(outs)});
      #4 clk = 0;
      rst = cycle < 3;
{chr(10).join(drive).replace("$random", "$random(seed)")}
    end
    $finish;
  end
endmodule
"""


def _run(work, sources, tb, std):
    exe = work / f"sim_{std}"
    subprocess.run(["iverilog", f"-g{std}", "-o", str(exe), "-s", "equiv_tb", str(tb),
                    *map(str, sources)], check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", str(exe)], check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if not line.startswith(("VCD", "WARNING"))]


def compare(old_dir, new_dir, top, *, cycles=20000, seed=1):
    """``(matching, cycles, changed cycles, message)`` of the comparison (see the module docstring)."""
    if shutil.which("iverilog") is None:
        raise SystemExit("sim.equiv needs iverilog on PATH (Debian package iverilog)")
    old_m = json.loads((Path(old_dir) / f"{top}.json").read_text())
    new_m = json.loads((Path(new_dir) / f"{top}.json").read_text())
    old_out = {p["name"] for p in old_m["ports"] if p["direction"] == "out"}
    new_out = {p["name"] for p in new_m["ports"] if p["direction"] == "out"}
    common = old_out & new_out
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old_v = (Path(old_dir) / f"{top}.v").read_text()
        # The old top is renamed so that both designs can sit in one run if needed; the traces
        # come from separate runs, one design each.
        old_v = re.sub(rf"\bmodule {re.escape(top)}\b", f"module old_{top}", old_v, count=1)
        (work / "old.v").write_text(old_v)
        traces = {}
        for label, manifest, src, dut, stds in (
                ("old", old_m, work / "old.v", f"old_{top}", ("2005",)),
                ("new", new_m, Path(new_dir) / f"{top}.v", top, ("2005", "2012"))):
            tb = work / f"tb_{label}.v"
            tb.write_text(testbench(manifest, dut, cycles, seed, common))
            for std in stds:
                traces[label, std] = _run(work, [src], tb, std)
    ref = traces["old", "2005"]
    changed = sum(1 for a, b in zip(ref, ref[1:], strict=False) if a != b)
    for key, trace in traces.items():
        if trace != ref:
            first = next((i for i, (a, b) in enumerate(zip(ref, trace, strict=False)) if a != b), min(len(ref), len(trace)))
            return False, len(ref), changed, (f"{key[0]} -g{key[1]} differs from old -g2005 first "
                                              f"at cycle {first}")
    return True, len(ref), changed, (f"{top}: {len(ref)} cycles, outputs identical (old -g2005, new "
                                     f"-g2005 and -g2012; {len(common)} outputs, changing in "
                                     f"{changed} cycles)")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m sim.equiv", description=__doc__.splitlines()[0])
    ap.add_argument("old_dir")
    ap.add_argument("new_dir")
    ap.add_argument("top")
    ap.add_argument("--cycles", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    ok, _, _, message = compare(args.old_dir, args.new_dir, args.top, cycles=args.cycles,
                                seed=args.seed)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
