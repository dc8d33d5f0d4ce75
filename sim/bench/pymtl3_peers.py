"""pymtl3-net's mesh and torus routers as Verilog, the peers of ``accelgen bench qor``.

The routers come from the PyPI package ``pymtl3-net`` (``pip install 'accelgen[qor]'``), translated
by PyMTL3's Yosys backend (``YosysTranslationPass``: Verilog with SystemVerilog ``logic``, which
Yosys reads with ``read_verilog -sv``; the SystemVerilog backend's unpacked array ports are beyond
Yosys 0.23). Parameters:

- ``MeshRouterRTL``: 5 ports, YX dimension order (``DORYMeshRouteUnitRTL``), 4-entry input queues
  (``NormalQueueRTL``), packets of a 4 x 4 mesh with a 1-bit opaque field and a 32-bit payload
  (41 bits, one flit each);
- ``TorusRouterRTL``: 5 ports, 2 virtual channels, 4 credits per VC (``credit_line``), the same
  packet with a VC field (42 bits).

The translation needs three repairs before Yosys 0.23 builds what the PyMTL3 source describes; each
is counted in the result:

1. *Undriven struct arrays.* For an array of packet structs the translator declares both a packed
   array and one array per field, drives only the packed one, and assigns each consumer from both.
   Yosys resolves the double driver arbitrarily, the queues' data become undriven and are removed
   (a router with no data path). Reads of arrays that nothing writes are dropped.
2. *Loop variables.* A loop variable is a module-level ``integer`` assigned only inside an ``if`` of
   an ``always_comb`` block, which Yosys reads as a latch; it is set to 0 at the top of the block.
3. *The torus dateline.* ``DORYTorusRouteUnitRTL`` sets ``send_msg_wire.vc_id``; the translation
   writes that to a field copy the output never reads (and infers a latch for it). The assignment
   is made to the VC bit of the packed message instead, as the source means.
"""

import re
import sys
from pathlib import Path

__all__ = ["PEERS", "available", "generate", "repair", "PAYLOAD_BITS"]

PAYLOAD_BITS = 32
PEERS = {
    "mesh": "pymtl3-net MeshRouterRTL: 5 ports, YX, 4-entry queues, 41-bit single-flit packets",
    "torus": "pymtl3-net TorusRouterRTL: 5 ports, 2 VCs, 4 credits per VC, 42-bit packets",
}


def available():
    """None when pymtl3-net can be imported, else the reason it cannot."""
    try:
        import pymtl3_net  # noqa: F401 - only whether it is installed
    except ImportError:
        return "pymtl3-net is not installed (pip install 'accelgen[qor]')"
    return None


def _translate(which, out_dir):
    """Translate router ``which`` into ``out_dir``; the file's path and its top module's name.
    PyMTL3 writes into the working folder: call this in a process of its own."""
    import os

    from pymtl3.passes.backends.yosys import YosysTranslationPass
    from pymtl3.stdlib.stream.queues import NormalQueueRTL
    from pymtl3_net.meshnet.DORYMeshRouteUnitRTL import DORYMeshRouteUnitRTL
    from pymtl3_net.meshnet.MeshRouterRTL import MeshRouterRTL
    from pymtl3_net.ocnlib.ifcs.packets import mk_mesh_pkt
    from pymtl3_net.ocnlib.ifcs.positions import mk_mesh_pos
    from pymtl3_net.router.InputUnitRTL import InputUnitRTL
    from pymtl3_net.torusnet.TorusRouterRTL import TorusRouterRTL

    pos = mk_mesh_pos(4, 4)
    if which == "mesh":
        pkt = mk_mesh_pkt(4, 4, opaque_nbits=1, vc=1, payload_nbits=PAYLOAD_BITS)

        class InputUnit4(InputUnitRTL):
            def construct(s, PacketType):
                super().construct(PacketType, QueueType=lambda t: NormalQueueRTL(t, 4))

        router = MeshRouterRTL(pkt, pos, InputUnitType=InputUnit4,
                               RouteUnitType=DORYMeshRouteUnitRTL)
    else:
        pkt = mk_mesh_pkt(4, 4, opaque_nbits=1, vc=2, payload_nbits=PAYLOAD_BITS)
        router = TorusRouterRTL(pkt, pos, ncols=4, nrows=4, vc=2, credit_line=4)
    top = f"pymtl3_{which}_router"
    os.chdir(out_dir)
    router.elaborate()
    router.set_metadata(YosysTranslationPass.enable, True)
    router.set_metadata(YosysTranslationPass.explicit_module_name, top)
    router.set_metadata(YosysTranslationPass.explicit_file_name, f"{top}.v")
    router.apply(YosysTranslationPass())
    return Path(out_dir) / f"{top}.v", top


def _lhs_array(line):
    """The name of the array a line assigns an element (or part of one) of, else None."""
    m = re.match(r"^\s*(?:assign\s+)?(\w+)\s*\[", line)
    if m is None:
        return None
    i, depth = m.end() - 1, 0
    while i < len(line):
        if line[i] == "[":
            depth += 1
        elif line[i] == "]":
            depth -= 1
            if depth == 0:
                rest = line[i + 1:].lstrip()
                if rest.startswith("["):
                    i = len(line) - len(rest)
                    continue
                if rest.startswith("<=") or (rest.startswith("=") and not rest.startswith("==")):
                    return m.group(1)
                return None
        i += 1
    return None


_ARRAY = re.compile(r"^\s*logic\s*(?:\[[^\]]*\])?\s*(\w+)\s*(?:\[0:\d+\])+;", re.M)
_ARRAY_READ = re.compile(r"^\s*assign\s+\w+\s*=\s*(\w+)\s*(?:\[\s*\d+\s*\]\s*)+;")
_LOOPVAR = re.compile(r"^\s*integer\s+(__loopvar__\w+);", re.M)
_ALWAYS_COMB = re.compile(r"^([ \t]*)always_comb begin : (\w+)\n", re.M)


def _repair_module(text, counts):
    arrays = set(_ARRAY.findall(text))
    written = {_lhs_array(line) for line in text.splitlines()}
    unwritten = arrays - written
    kept = []
    for line in text.splitlines(keepends=True):
        m = _ARRAY_READ.match(line)
        if m and m.group(1) in unwritten:
            counts["undriven_array_reads"] += 1
            continue
        kept.append(line)
    text = "".join(kept)
    loopvars = _LOOPVAR.findall(text)

    def init(m):
        names = [v for v in loopvars if v.startswith(f"__loopvar__{m.group(2)}_")]
        counts["loop_variables"] += len(names)
        return m.group(0) + "".join(f"{m.group(1)}  {v} = 0;\n" for v in names)

    return _ALWAYS_COMB.sub(init, text)


def repair(text):
    """``(repaired text, counts)``: the three repairs of the module docstring, counted."""
    counts = {"undriven_array_reads": 0, "loop_variables": 0, "dateline_assignments": 0}
    parts = [_repair_module(part, counts) for part in re.split(r"(?=^module )", text, flags=re.M)]
    text = "".join(parts)
    text, n = re.subn(r"\bsend_msg_wire__vc_id = ", f"send_msg_wire[{PAYLOAD_BITS}] = ", text)
    counts["dateline_assignments"] = n
    return text, counts


def generate(which, out_dir):
    """Translate and repair router ``which`` (``mesh`` or ``torus``) in a process of its own;
    ``(Verilog path, top, repair counts)``."""
    import json
    import os
    import subprocess
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.run([sys.executable, "-m", "sim.bench.pymtl3_peers", which,
                           str(out_dir.resolve())], capture_output=True, text=True, env=env,
                          cwd=out_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"pymtl3-net translation of the {which} router failed:\n"
                           + (proc.stdout + proc.stderr)[-3000:])
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    path = Path(info["path"])
    text, counts = repair(path.read_text())
    path.write_text(text)
    return path, info["top"], counts


def main(argv=None):
    import json
    which, out_dir = (argv or sys.argv[1:])[:2]
    path, top = _translate(which, out_dir)
    print(json.dumps({"path": str(path), "top": top}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
