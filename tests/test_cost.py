"""Cost in per-sample passes (unlearnlib.cost): exact counts, the ratio to retraining, and no effect on results.

Every run here takes three steps of batch 32 on the class-3 task of digits (more than 96 forget and retain
samples, checked), so every forget and retain batch of the run is full and the count follows from the batch
size, the steps taken and the stopping rule's evaluations, both read from the run's log.
"""

from __future__ import annotations

import pytest
import torch

from conftest import same_state, state_of
from unlearnlib import cost
from unlearnlib.methods import get_method
from unlearnlib.methods._loop import GUARD_SIZE
from unlearnlib.models import make_model
from unlearnlib.train import TrainConfig, train_model

B = 32          # the unlearning batch size of every run below
STEPS = 3       # 3 x 32 = 96 samples: within the first pass over D_f and D_r, so every batch is full


def step_cost(name: str) -> tuple[int, int]:
    """Per-sample (forward, backward) passes of one step of ``name``, by hand from what the step computes."""
    f = {"ga": (B, B),                          # -CE_f: one forward and backward of the forget batch
         "finetune": (B, B),                    # CE_r on the retain batch
         "neggrad_plus": (2 * B, 2 * B),        # one backward of the combined loss over both batches
         "pcgrad": (2 * B, 2 * B),              # g_f and g_r: two batch gradients
         "orthograd": (2 * B, 2 * B),           # g_u, then the per-layer per-sample gradients of the retain batch
         "implicit_surgery": (3 * B, 2 * B),    # both batches forward and backward, then the retain probe
         "ltu": (3 * B, 3 * B),                 # first order: support, query and forget batches, once each
         "masked:ga": (2 * B, 2 * B)}           # GA's step, then the per-sample test batch of B retain samples
    return f[name]


def setup_cost(name: str, task, positions) -> int:
    """Forward passes outside the steps: the shape check (one sample), LTU's attack features, and the collapse
    guard's slice of the usable retain samples scored at the start and at the end (STEPS is shorter than one pass,
    so no check falls in between)."""
    guard = 2 * min(GUARD_SIZE, len(positions) if name == "ltu" else len(task.y_retain))
    if name == "ltu":
        return 1 + len(positions) // 2 + len(task.y_test) // 2 + guard
    return 1 + guard


METHODS = ("ga", "neggrad_plus", "finetune", "pcgrad", "orthograd", "implicit_surgery", "ltu", "masked:ga")


def run(name, model, task, stop_at, positions, log=None, count=True):
    kw = dict(steps=STEPS, batch_size=B, seed=0, stop_at=stop_at, log=log if log is not None else [])
    if name == "ltu":
        kw["retain_positions"] = positions
    if count:
        with cost.counting() as passes:
            out = get_method(name)(model, task, **kw)
        return out, passes, kw["log"]
    return get_method(name)(model, task, **kw), None, kw["log"]


@pytest.fixture(scope="module")
def positions(class_task):
    # LTU's D̂_r: 128 retain samples, so that its support and query halves (64 each) give full batches of 32.
    return torch.randperm(len(class_task.y_retain), generator=torch.Generator().manual_seed(5))[:128]


@pytest.mark.parametrize("stop_at", [None, "auto"])
@pytest.mark.parametrize("name", METHODS)
def test_counts_equal_the_hand_count(name, stop_at, original, class_task, positions):
    assert len(class_task.y_forget) >= STEPS * B and len(class_task.y_retain) >= STEPS * B
    _, passes, log = run(name, original, class_task, stop_at, positions)
    taken = log[-1]["step"]                    # the loop always evaluates after its last step
    # one forward over D_f per evaluation of the stopping rule; without a rule the evaluations only fill the log,
    # which is bookkeeping, not the method's cost
    checks = len(log) if stop_at is not None else 0
    f, b = step_cost(name)
    n_f = len(class_task.y_forget)
    assert passes.forward == setup_cost(name, class_task, positions) + taken * f + checks * n_f
    assert passes.backward == taken * b
    assert passes.total == passes.forward + passes.backward
    if stop_at is None:
        assert taken == STEPS


def test_a_stopping_rule_that_fires_is_counted(original, class_task, positions):
    # A target of 100 % is met at the first evaluation: the run stops after one of its three steps, and the count
    # is that of one step and one evaluation.
    _, passes, log = run("ga", original, class_task, 100.0, positions)
    assert [e["step"] for e in log] == [1]
    assert passes.forward == setup_cost("ga", class_task, positions) + B + len(class_task.y_forget)
    assert passes.backward == B


def hook_counts(model):
    """An independent count with hooks on a plain model: the batch size of every call, and of every gradient
    that flows back through its output (hooks are copied with the model, so the method's copy counts too)."""
    counts = {"forward": 0, "backward": 0}

    def pre(module, inputs):
        counts["forward"] += inputs[0].shape[0]

    def post(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda g: counts.__setitem__("backward", counts["backward"] + g.shape[0]))

    model.register_forward_pre_hook(pre)
    model.register_forward_hook(post)
    return counts


@pytest.mark.parametrize("name", ["ga", "neggrad_plus", "finetune", "pcgrad", "implicit_surgery"])
def test_counts_equal_an_instrumented_count(name, original, class_task, positions):
    import copy

    model = copy.deepcopy(original)
    counts = hook_counts(model)
    _, passes, _ = run(name, model, class_task, "auto", positions)
    assert (passes.forward, passes.backward) == (counts["forward"], counts["backward"])


def test_per_sample_routes_count_the_same(original, class_task):
    # vmap and the per-layer route compute the same per-sample gradients: the same passes.
    counts = {}
    for route in ("ghost", "vmap"):
        with cost.counting() as passes:
            get_method("orthograd")(original, class_task, steps=STEPS, batch_size=B, stop_at=None, per_sample=route)
        counts[route] = (passes.forward, passes.backward)
    assert counts["ghost"] == counts["vmap"]


def test_second_order_look_ahead_counts_its_hessian_vector_products(original, class_task):
    counts, logs = {}, {}
    for order in (False, True):
        logs[order] = []
        with cost.counting() as counts[order]:
            get_method("lur")(original, class_task, steps=STEPS, batch_size=B, stop_at=None, log=logs[order],
                              second_order=order)
    # Per step: the inner step (B), the outer loss at θ' (B) and g_r (B), forward and backward; second order adds
    # one Hessian-vector product of the retain batch, 2B backward passes.
    for order in (False, True):  # no stopping rule: the log's evaluations are not counted
        assert counts[order].forward == setup_cost("lur", class_task, None) + STEPS * 3 * B
    assert counts[False].backward == STEPS * 3 * B
    assert counts[True].backward == STEPS * 5 * B


def test_ltu_second_order_adds_its_look_ahead(original, class_task, positions):
    counts = {}
    for order in (False, True):
        with cost.counting() as counts[order]:
            get_method("ltu")(original, class_task, steps=STEPS, batch_size=B, stop_at=None,
                              retain_positions=positions, second_order=order)
    # Second order runs the inner step of the support batch once more (B forward and backward) and pulls both
    # outer gradients back through it: two Hessian-vector products, 4B backward passes, per step.
    assert counts[True].forward - counts[False].forward == STEPS * B
    assert counts[True].backward - counts[False].backward == STEPS * 5 * B


def test_nested_counters_and_no_counter():
    with cost.counting() as outer:
        with cost.counting() as inner:
            cost.forward_backward(7)
        cost.forward(2)
    assert (inner.forward, inner.backward, outer.forward, outer.backward) == (7, 7, 9, 7)
    cost.forward(5)   # outside every block: recorded nowhere, and no error
    assert outer.forward == 9


@pytest.mark.parametrize("name", METHODS)
def test_counting_changes_no_result(name, original, class_task, positions):
    counted, _, log_a = run(name, original, class_task, "auto", positions, count=True)
    plain, _, log_b = run(name, original, class_task, "auto", positions, count=False)
    assert same_state(state_of(counted), state_of(plain)) and log_a == log_b


def test_training_passes_match_the_training_loop(data):
    # train_model on 100 samples for 2 epochs of batch 32 (the last batch of each epoch has 4): hooks count.
    model = make_model("cnn", data.input_shape, data.num_classes, seed=0)
    counts = hook_counts(model)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01)
    train_model(model, data.x_train[:100], data.y_train[:100], cfg, progress=False)
    expected = cost.training_passes(100, cfg.epochs)
    assert (counts["forward"], counts["backward"]) == (expected.forward, expected.backward) == (201, 200)


def test_rows_carry_passes_and_the_ratio_to_retraining(data, cfg, class_task, oracle):
    from unlearnlib.experiment import compare_methods

    comp = compare_methods({"original": None, "retrain": "retrain", "ga": ("ga", {"steps": STEPS, "stop_at": None})},
                           "class", data=data, cfg=cfg, seeds=[0], forget_class=3, device="cpu", progress=False,
                           floor=False)
    rows = {r["method"]: r for r in comp.rows}
    n_r = len(class_task.y_retain)
    retrain = rows["retrain"]
    assert (retrain["forward_passes"], retrain["backward_passes"]) == (cfg.epochs * n_r + 1, cfg.epochs * n_r)
    assert retrain["passes"] == 2 * cfg.epochs * n_r + 1 and retrain["passes_vs_retrain"] == 1.0
    ga = rows["ga"]
    assert ga["steps"] == STEPS
    # stop_at=None: the evaluations over D_f that compare_methods' log asks for are not the method's cost
    assert ga["forward_passes"] == setup_cost("ga", class_task, None) + STEPS * B
    assert ga["backward_passes"] == STEPS * B
    assert ga["passes"] == ga["forward_passes"] + ga["backward_passes"]
    assert ga["passes_vs_retrain"] == pytest.approx(ga["passes"] / retrain["passes"], rel=1e-15)
    assert rows["original"]["passes"] == 0 and rows["original"]["passes_vs_retrain"] == 0.0
    # The table's default columns are unchanged.
    assert "passes" not in comp.table()
