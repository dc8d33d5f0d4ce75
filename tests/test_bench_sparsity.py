"""``accelgen bench sparsity``: the pruned MLP's fine-tuning, and the 2:4 MLP through the RTL engine
bit-exact under gaps and stalls (``sim/tb/gemm_mlp.py`` with ``sparse``)."""

import json

import numpy as np
import pytest

from gen import cli
from sim.bench import sparsity as SP
from sim.bench import vsq as B
from sim.bench import vsq_rtl as R
from sim.golden import sparsity as S
from tests.conftest import build_block

pytest.importorskip("sklearn", reason="the digits MLP needs scikit-learn (extra: bench)")


@pytest.fixture(scope="module")
def tuned():
    model = B.train_digits_mlp(seed=0)
    pruned, masks = SP.prune_model(model)
    return model, pruned, masks, SP.fine_tune(pruned, masks, epochs=10, seed=0)


def test_fine_tuning_keeps_the_mask_and_recovers_accuracy(tuned):
    model, pruned, masks, out = tuned
    for w, mk in zip(out["weights"], masks, strict=True):
        assert not np.any(w[~mk])
        values, _ = S.compress(w)            # at most 2 nonzeros per group: compressible
        assert values.shape[0] == S.padded_k(w.shape[0]) // 2
    x, y = model["x_train"], model["y_train"]

    def acc(mdl):
        return np.mean(B.mlp_forward_float(mdl, x).argmax(1) == y)
    assert acc(out) >= acc(pruned)


@pytest.mark.sim
def test_sparse_mlp_on_the_engine_under_stalls(tuned, seed):
    """Ten images of the 2:4 W4A4 VS-Quant model as 2:4 commands, with gaps and stalls: every
    accumulator and the logits equal the golden model's."""
    _, _, _, model = tuned
    results = R.run_mlp(build_block(SP.rtl_sections(), "gemm"), model, 10,
                        settings=[SP.RTL_SETTING], seed=seed, gap=0.3, stall=0.4)
    (res,) = results
    assert sum(g["mismatches"] for g in res["gemms"]) == 0
    gold = B.mlp_forward_quantized(model, model["x_test"][:10], 4, 4, "vsq", 4, "max")
    assert np.array_equal(np.asarray(res["logits"]), gold)


@pytest.mark.sim
@pytest.mark.slow
def test_bench_quick(tmp_path):
    """`accelgen bench sparsity --quick`: 2:4 close to twice dense, 0 mismatches on the RTL MLP."""
    out = tmp_path / "s.json"
    assert cli.main(["bench", "sparsity", "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for row in r["throughput"]["results"]:
        if row["sparse"]:
            assert row["speedup_vs_dense"] > 1.9
    assert r["mlp_rtl"]["mismatches"] == 0 and r["mlp_rtl"]["logits_equal"]


def test_system_plans_with_2_4_commands_are_the_golden_logits(tuned, tmp_path):
    """On a 2 x 2 system of 2:4 tiles, the MLP plan of the 2:4 model as dense and as 2:4 commands
    (host words from :mod:`sim.host`, executed by :mod:`sim.golden.system`, which decodes the
    compressed beats) gives :func:`sim.golden.system.mlp_logits`."""
    from gen.config import parse_config
    from gen.emit import emit
    from sim import host as H
    from sim.bench import demo as D
    from sim.golden import system as GS
    _, _, _, model = tuned
    sections = D.system_sections(2, 2, tile=dict(D.DEMO_TILE, sparsity="2:4"), softmax=False,
                                 top="sys_sparse")
    emit(parse_config(sections), tmp_path)
    man = json.loads((tmp_path / "sys_sparse.json").read_text())
    x = model["x_test"][:12]
    for sparse in (False, True):
        setting = dict(SP.RTL_SETTING, sparse=sparse)
        plan = H.mlp_plan(man, model, x, setting)
        result = GS.execute(man, plan)[0]
        assert np.array_equal(np.asarray(result["output"]), GS.mlp_logits(model, x, setting))
    with pytest.raises(ValueError, match="built without 2:4"):
        dense_sections = D.system_sections(2, 2, softmax=False, top="sys_dense")
        emit(parse_config(dense_sections), tmp_path / "d")
        dman = json.loads((tmp_path / "d" / "sys_dense.json").read_text())
        H.mlp_plan(dman, model, x, SP.RTL_SETTING)
