# amaranth: UnusedElaboratable=no
# (a Tile whose parameters are refused is never elaborated)
"""The tile and the multi-tile system: configuration messages, derived widths and the manifest's
word layouts, and one smoke run of the RTL through the host port (bench:
``sim/tb/system_smoke.py``)."""

import gc
import json
import shutil
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from gen.config import ConfigError, GemmConfig, SystemConfig, parse_config
from gen.emit import render
from sim import runner
from tests.conftest import assert_lint_clean, build_block
from tests.test_emit import _verilog_ports

GEMM = {"rows": 2, "cols": 2, "modes": ["int8"], "acc_width": 20, "max_m": 16, "max_n": 16,
        "max_k": 16, "out_fifo_depth": 8}
SOFTMAX = {"lanes": 2, "in_width": 8, "in_frac": 4, "out_frac": 7, "max_len": 16}
# The smoke system: two tiles (tile-to-tile traffic needs two), a tiny engine and softmax unit,
# one VC and short packets (3 payload words) so that results span several packets.
SMOKE = {"system": {"top": "system_smoke", "kx": 2, "ky": 1, "spad_words": 256, "cmd_depth": 4,
                    "vcs": 1, "vc_depth": 4, "max_packet_flits": 4, "gemm": GEMM,
                    "softmax": SOFTMAX}}


def _word(layout, **fields):
    return layout.const(fields).as_value().value


async def _put(ctx, tile, words):
    """Offers ``words`` (a packet: ``last`` on the final one) on the tile's ``net_i``."""
    for i, data in enumerate(words):
        ctx.set(tile.net_i.valid, 1)
        ctx.set(tile.net_i.payload.data, data)
        ctx.set(tile.net_i.payload.last, int(i == len(words) - 1))
        await ctx.tick().until(tile.net_i.ready)
    ctx.set(tile.net_i.valid, 0)


def _simulate(tile, bench):
    from amaranth.sim import Simulator
    sim = Simulator(tile)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def system(**over):
    base = {"gemm": dict(GEMM), "softmax": dict(SOFTMAX), "vc_depth": 4, "max_packet_flits": 4}
    base.update(over)
    return {"system": base}


@pytest.mark.parametrize("data, message", [
    (system(kx=0), "system.kx = 0: must be an integer from 1 to 8"),
    (system(spad_words=128), "system.spad_words = 128: must be an integer from 256 to 65536"),
    (system(spad_words=384), "system.spad_words = 384: must be a power of two from 256 to 65536"),
    (system(cmd_depth=3), "system.cmd_depth = 3: must be an integer from 4 to 256"),
    (system(vcs=3), "system.vcs = 3: must be 1, 2 or 4"),
    (system(max_packet_flits=1), "system.max_packet_flits = 1: must be an integer from 2 to 64"),
    (system(max_packet_flits=8),
     "system.max_packet_flits = 8: must be at most system.vc_depth = 4 (every buffer holds a "
     "whole packet; see gen/router.py)"),
    (system(routing="zx"), 'system.routing = "zx": must be one of xy, yx'),
    (system(gemm=dict(GEMM, cols=4)),
     "system.gemm.cols = 4: must equal system.gemm.rows = 2 (a packed output word is an a beat "
     "of the next GEMM)"),
    (system(softmax=dict(SOFTMAX, lanes=4)),
     "system.softmax.lanes = 4: must equal system.gemm.cols = 2 (a softmax beat is a packed "
     "output word)"),
    (system(softmax=dict(SOFTMAX, in_width=10)),
     "system.softmax.in_width = 10: must be 8 (a score is a byte of a packed output word)"),
    (system(softmax=dict(SOFTMAX, out_frac=8)),
     "system.softmax.out_frac = 8: must be at most 7 (a probability is written as a byte, "
     "saturated at 127)"),
    (system(gemm=dict(GEMM, rows=0)), "system.gemm.rows = 0: must be an integer from 1 to 64"),
    (system(gemm=dict(GEMM, max_k=1024)),
     "system.gemm.acc_width = 20: must be at least 26 so that system.gemm.max_k = 1024 INT8 "
     "products cannot overflow"),
    (system(gemm=dict(GEMM, vsq_post_row_mult_bits=8)),
     "system.gemm.vsq_post_row_mult_bits = 8: must be 0 unless system.gemm.vsq_post_mult_bits "
     "is set (the per-row factor is part of the post-processing unit)"),
    (system(gemm=dict(GEMM, colls=2)),
     "system.gemm.colls = 2: unknown key; allowed keys are rows, cols, modes, acc_width, "
     "max_m, max_n, max_k, out_fifo_depth, vsq_vector_sizes, vsq_scale_bits, vsq_post_mult_bits, "
     "vsq_post_row_mult_bits, sparsity"),
    (system(softmax=dict(SOFTMAX, lane=2)),
     "system.softmax.lane = 2: unknown key; allowed keys are lanes, in_width, in_frac, "
     "out_frac, max_len, sum_frac, recip_bits, table_reg, shift_reg, recip_step_bits, "
     "mult_stages"),
    (system(gemm=dict(GEMM, top="tile_gemm")),
     'system.gemm.top = "tile_gemm": not allowed: a tile\'s engine is not a Verilog module of '
     "its own (system.top names the system's)"),
    (system(softmax=dict(SOFTMAX, top="tile_softmax")),
     'system.softmax.top = "tile_softmax": not allowed: a tile\'s softmax unit is not a Verilog '
     "module of its own (system.top names the system's)"),
    (system(vc_depth=0), "system.vc_depth = 0: must be an integer from 1 to 64"),
    (system(router_cycles=3), "system.router_cycles = 3: must be an integer from 1 to 2"),
    (system(gemm=3), "system.gemm = 3: must be a table"),
    (system(mesh=1),
     "system.mesh = 1: unknown key; allowed keys are top, kx, ky, spad_words, cmd_depth, vcs, "
     "vc_depth, max_packet_flits, routing, router_cycles, gemm, softmax"),
])
def test_config_messages(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert str(exc.value) == message


def test_config_nested_defaults_and_round_trip():
    """[system.gemm] defaults to GemmConfig(); [system.softmax] is optional; to_dict round-trips."""
    cfg = parse_config({"system": {"vc_depth": 8}}).system
    assert cfg == SystemConfig() and cfg.gemm == GemmConfig() and cfg.softmax is None
    full = parse_config(SMOKE)
    assert parse_config(full.to_dict()) == full
    assert "softmax" not in parse_config({"system": {}}).to_dict()["system"]
    assert "top" not in full.to_dict()["system"]["gemm"]
    assert "top" not in full.to_dict()["system"]["softmax"]
    # The mesh keys are NocConfig's, with the system's defaults.
    assert (cfg.kx, cfg.ky, cfg.vcs, cfg.vc_depth, cfg.max_packet_flits, cfg.routing,
            cfg.router_cycles) == (2, 2, 2, 8, 8, "xy", 1)


def test_word_width_and_manifest_words():
    """W is the widest of the a, w, o words, the command and the header, rounded up to bytes; the
    manifest describes every word layout and the parameters a program needs (~2 s)."""
    from gen.tile import Tile
    files = render(parse_config(SMOKE))
    man = json.loads(files["system_smoke.json"])
    q, words = man["parameters"], man["words"]
    assert set(words) == {"command", "header", "a", "w", "o"}
    widths = {name: entry["width"] for name, entry in words.items()}
    assert q["word_bits"] == -(-max(widths.values()) // 8) * 8
    assert (widths["a"], widths["w"], widths["o"], widths["header"]) == (16, 16, 40, 2 + 8)
    command = [f["name"] for f in words["command"]["fields"]]
    assert command == ["op", "a_addr", "w_addr", "o_addr", "a_count", "w_count", "gemm.m",
                       "gemm.n", "gemm.k", "gemm.mode", "pack", "rows", "beats", "stride", "kind",
                       "mcast", "mask", "dest_x", "dest_y"]
    offsets = {f["name"]: (f["offset"], f["width"]) for f in words["command"]["fields"]}
    assert offsets["op"] == (0, 2) and offsets["a_count"][1] == 9 and offsets["beats"][1] == 4
    assert offsets["mask"][1] == 2 and offsets["dest_x"][1] == 2 and offsets["dest_y"][1] == 1
    assert q["addr_bits"] == 8 and q["nodes"] == 2 and q["out_width"] == 20
    assert q["ops"] == {"gemm": 0, "softmax": 1, "send": 2, "wait": 3}
    assert q["kinds"] == {"cmd": 0, "data": 1, "host": 2}
    assert (q["softmax_lanes"], q["softmax_out_frac"], q["softmax_max_beats"]) == (2, 7, 8)
    stream = {f["name"]: f["width"] for f in man["streams"]["host_i"]["fields"]}
    assert stream["data"] == q["word_bits"]
    ports = {p["name"] for p in man["ports"]}
    assert {"busy0", "busy1", "gemms0", "gemms1", "errors", "idle"} <= ports
    with pytest.raises(ValueError, match="in_width = 10: must be 8"):
        Tile(gemm=dict(GEMM, modes=("int8",)), softmax=dict(SOFTMAX, in_width=10),
             spad_words=256, cmd_depth=4, kx=1, ky=1, max_packet_flits=4)
    with pytest.raises(ValueError, match="out_frac = 8: must be at most 7"):
        Tile(gemm=GEMM, softmax=dict(SOFTMAX, out_frac=8), spad_words=256, cmd_depth=4, kx=1,
             ky=1, max_packet_flits=4)
    # Built directly (a configuration requires lanes = cols), a softmax beat may not fit W. The
    # refusal comes after the engine and the unit are built: they are collected here, unused.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="lanes = 16: 128 bits do not fit a 88-bit word"):
            Tile(gemm=GEMM, softmax=dict(SOFTMAX, lanes=16), spad_words=256, cmd_depth=4, kx=1,
                 ky=1, max_packet_flits=4)
        gc.collect()


def test_verilog_ports_and_lint(tmp_path):
    """The manifest's ports are the Verilog's, and the Verilog passes `verilator --lint-only` with
    the runner's waivers (~4 s)."""
    files = render(parse_config(SMOKE))
    man = json.loads(files["system_smoke.json"])
    ports = _verilog_ports(files["system_smoke.v"], "system_smoke")
    assert {p["name"]: (p["direction"], p["width"]) for p in man["ports"]} == ports
    assert_lint_clean(tmp_path, files["system_smoke.v"], "system_smoke")


@pytest.mark.sim
@pytest.mark.parametrize("kx, sim", [(2, None), (1, "icarus")], ids=["2x1", "1x1-icarus"])
def test_smoke(seed, kx, sim):
    """GEMMs with pack 0 and 1, a dropped GEMM, a SOFTMAX, SENDs to the host and one tile-to-tile
    SEND + WAIT, with random idle cycles on host_i and backpressure on host_o, bit-exact against
    the golden models: on a 2 x 1 system (Verilator by default: 30 to 60 s with the build on 2
    cores, ~4 s without), and on a 1 x 1 system (the host port and the one tile share the only
    node; the tile-to-tile SEND goes to the tile itself) on Icarus Verilog when it is installed
    (~5 s with the build)."""
    if sim == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed (Debian package iverilog); Verilator covers 2 x 1")
    sections = SMOKE if kx == 2 else {
        "system": dict(SMOKE["system"], top=f"system_smoke_{kx}x1", kx=kx, ky=1)}
    if sim is None:
        sim_build = build_block(sections, "system")
    else:
        sim_build = runner.emit_and_build(parse_config(sections), sim=sim)["system"]
    runner.run(sim_build, "sim.tb.system_smoke", seed=seed,
               extra_env={"ACCELGEN_GAP": "0.3", "ACCELGEN_STALL": "0.3"})


def test_tile_streams_one_word_per_cycle():
    """Amaranth simulation of one tile (no HDL simulator, ~0.5 s): DATA words are written as they
    arrive, a SEND of 7 words leaves as packets of 3 + 3 + 1 payload words with one header each and
    no idle cycle between beats, and a WAIT ends once the DATA words it counts have arrived."""
    from gen.tile import KINDS, OPS, Tile
    tile = Tile(gemm=GEMM, softmax=SOFTMAX, spad_words=256, cmd_depth=4, kx=2, ky=1,
                max_packet_flits=4)
    head, command = tile.header_layout, tile.command_layout
    word = _word
    words = [0x1000 + i for i in range(7)]
    sent = []

    async def bench(ctx):
        ctx.set(tile.net_o.ready, 1)
        cmds = [word(command, op=OPS["wait"], a_count=7),
                word(command, op=OPS["send"], a_addr=20, a_count=7, o_addr=5,
                     kind=KINDS["host"], dest_x=1)]
        await _put(ctx, tile, [word(head, kind=KINDS["cmd"]), *cmds])
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(tile.net_o.valid) and not ctx.get(tile.idle)   # waiting
        for i in range(0, 7, 3):
            await _put(ctx, tile, [word(head, kind=KINDS["data"], addr=20 + i), *words[i:i + 3]])
        for cycle in range(40):
            await ctx.tick()
            if ctx.get(tile.net_o.valid):
                sent.append((cycle, ctx.get(tile.net_o.payload.data),
                             ctx.get(tile.net_o.payload.last), ctx.get(tile.net_o.payload.dest_x)))
        assert ctx.get(tile.idle) and ctx.get(tile.errors) == 0

    _simulate(tile, bench)
    host = KINDS["host"]
    assert [(d, last) for _, d, last, _ in sent] == [
        (word(head, kind=host, addr=5), 0), (words[0], 0), (words[1], 0), (words[2], 1),
        (word(head, kind=host, addr=8), 0), (words[3], 0), (words[4], 0), (words[5], 1),
        (word(head, kind=host, addr=11), 0), (words[6], 1)]
    cycles = [c for c, *_ in sent]
    assert cycles == list(range(cycles[0], cycles[0] + len(sent)))
    assert {x for *_, x in sent} == {1}


def test_tile_drops_what_the_engine_drops():
    """The tile reads the engine's `cmd_ok` (to finish a dropped GEMM at once): for
    commands with a size of 0 or above the maximum, a mode not built, VSQ in an FP8 mode or with a
    vector size not built, and post-processing in an FP8 mode, the tile's and the engine's error
    counts agree and the tile goes idle; stray packets are counted too (Amaranth simulation,
    ~1.5 s)."""
    from gen.tile import KINDS, OPS, Tile
    gemm = dict(GEMM, modes=("int8", "fp8_e4m3"), acc_width=32, vsq_vector_sizes=(16,),
                vsq_scale_bits=4, post_mult_bits=8)
    tile = Tile(gemm=gemm, softmax=None, spad_words=256, cmd_depth=4, kx=1, ky=1,
                max_packet_flits=4)
    head, command = tile.header_layout, tile.command_layout
    ok = {"m": 2, "n": 2, "k": 2, "mode": 0, "vsq": 0, "vsel": 0, "out": 0, "relu": 0}
    bad = [dict(ok, m=0), dict(ok, n=17), dict(ok, k=0), dict(ok, mode=1), dict(ok, mode=7),
           dict(ok, mode=3, vsq=1), dict(ok, vsq=1, vsel=1), dict(ok, mode=3, out=1),
           dict(ok, mode=3, out=3, relu=1)]

    async def bench(ctx):
        for gemm_cmd in bad:
            await _put(ctx, tile, [_word(head, kind=KINDS["cmd"], addr=0),
                                   _word(command, op=OPS["gemm"], gemm=gemm_cmd)])
            await ctx.tick().repeat(6)
            assert ctx.get(tile.idle), gemm_cmd
        assert ctx.get(tile.errors) == ctx.get(tile.engine.errors) == len(bad)
        assert ctx.get(tile.gemms) == 0
        # Stray packets (HOST, kind 3, also header-only) are dropped and counted; an empty DATA
        # packet is not an error.
        for kind, words in ((KINDS["host"], [5, 6]), (3, []), (KINDS["host"], []),
                            (KINDS["data"], [])):
            await _put(ctx, tile, [_word(head, kind=kind, addr=9), *words])
        await ctx.tick()
        assert ctx.get(tile.errors) == len(bad) + 3 and ctx.get(tile.idle)

    _simulate(tile, bench)


def test_tile_counts_wrong_gemm_counts_and_refused_softmax():
    """A GEMM whose a_count or w_count is too large ends (and counts in `gemms`) and is counted in
    `errors`; a SOFTMAX with beats above max_beats or rows above max_m is dropped and counted; the
    right counts and a SOFTMAX within the limits are not errors; a GEMM whose a_count is too small
    never ends (Amaranth simulation, ~2 s)."""
    from gen.tile import KINDS, OPS, Tile
    tile = Tile(gemm=GEMM, softmax=SOFTMAX, spad_words=256, cmd_depth=4, kx=1, ky=1,
                max_packet_flits=4)
    head, command = tile.header_layout, tile.command_layout
    max_beats, max_m = tile.softmax.max_beats, GEMM["max_m"]
    # A 1 x 1 x 1 INT8 GEMM on the 2 x 2 array takes 1 a word and R = 2 w words.
    one = {"m": 1, "n": 1, "k": 1, "mode": 0}

    def gemm(a_count, w_count):
        return _word(command, op=OPS["gemm"], a_addr=0, w_addr=8, o_addr=16, a_count=a_count,
                     w_count=w_count, gemm=one)

    def softmax(rows, beats):
        return _word(command, op=OPS["softmax"], a_addr=0, o_addr=32, rows=rows, beats=beats,
                     stride=1)

    # (command, errors after it, gemms after it)
    steps = [(gemm(1, 2), 0, 1), (gemm(2, 2), 1, 2), (gemm(1, 3), 2, 3), (gemm(1, 2), 2, 4),
             (softmax(2, max_beats), 2, 4), (softmax(1, max_beats + 1), 3, 4),
             (softmax(max_m + 1, 1), 4, 4), (softmax(max_m, 1), 4, 4)]

    async def bench(ctx):
        for i, (cmd, errors, gemms) in enumerate(steps):
            await _put(ctx, tile, [_word(head, kind=KINDS["cmd"]), cmd])
            for _ in range(2000):
                await ctx.tick()
                if ctx.get(tile.idle):
                    break
            assert ctx.get(tile.idle), f"step {i}"
            assert (ctx.get(tile.errors), ctx.get(tile.gemms)) == (errors, gemms), f"step {i}"
        await _put(ctx, tile, [_word(head, kind=KINDS["cmd"]), gemm(0, 2)])
        await ctx.tick().repeat(100)
        assert not ctx.get(tile.idle) and ctx.get(tile.gemms) == 4 and ctx.get(tile.errors) == 4

    _simulate(tile, bench)


def test_readme_example_configures_the_demo_tile():
    """The README's `[system]` example is a valid configuration, and it is the demos' tile."""
    import tomllib
    from pathlib import Path

    from sim.bench import demo
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("### Tile and multi-tile system"):]
    example = tomllib.loads(section.split("```toml\n", 1)[1].split("```", 1)[0])
    cfg = parse_config(example).system
    for key in ("rows", "cols", "modes", "max_m", "max_n", "max_k", "vsq_vector_sizes",
                "vsq_post_mult_bits"):
        want = demo.DEMO_TILE[key]
        assert getattr(cfg.gemm, key) == (tuple(want) if isinstance(want, list) else want), key
    assert (cfg.kx, cfg.ky, cfg.spad_words) == (2, 2, 4096)
