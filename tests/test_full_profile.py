"""The realistic track: the ``full`` profile (CIFAR-10, ResNet-18 with GroupNorm, the CIFAR training recipe), its
data path, its missing-files message, its training and unlearning on a tiny synthetic set, mixed precision, and
the GPU benchmark script's CPU-checkable parts. Nothing here downloads anything or needs CIFAR-10's files: a
CIFAR-10-format folder of tiny local files goes through torchvision's real reader.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from errormodel import gradient_rtol, relative_errors
from unlearnlib import UnlearnError
from unlearnlib.config import get_profile
from unlearnlib.data import DatasetMissing, crop_flip, load_dataset, make_task, synthetic_images
from unlearnlib.models import count_parameters, make_model
from unlearnlib.train import TrainConfig, train_model

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# The profiles
# ---------------------------------------------------------------------------------------------------------------

def test_full_profile_is_cifar10_resnet18_with_the_cifar_recipe():
    p = get_profile("full")
    assert (p.dataset, p.model) == ("cifar10", "resnet18")
    cfg = TrainConfig.from_profile(p)
    assert cfg == TrainConfig(model="resnet18", epochs=40, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4,
                              augment="crop-flip", precision="mixed")


def test_ci_profile_and_its_recipe_are_unchanged():
    p = get_profile("ci")
    assert (p.dataset, p.model, p.train_epochs, p.train_batch_size, p.train_lr, p.seeds) == ("digits", "cnn", 30, 64,
                                                                                              0.05, 3)
    assert TrainConfig.from_profile(p) == TrainConfig(model="cnn", epochs=30, batch_size=64, lr=0.05)
    assert TrainConfig.from_profile(p).key_dict() == {"model": "cnn", "epochs": 30, "batch_size": 64, "lr": 0.05,
                                                      "momentum": 0.9, "weight_decay": 5e-4}


@pytest.mark.parametrize("field,value", [("augment", "mixup"), ("precision", "bf16"), ("augment", None)])
def test_unknown_recipe_options_are_refused(field, value):
    with pytest.raises(UnlearnError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_profile_override_of_the_recipe_options_is_checked():
    assert get_profile("ci", train_augment="crop-flip").train_augment == "crop-flip"
    with pytest.raises(UnlearnError, match="train_precision"):
        get_profile("ci", train_precision="")


# ---------------------------------------------------------------------------------------------------------------
# Cache keys: a recipe that existed before augment and precision were added keeps its key
# ---------------------------------------------------------------------------------------------------------------

#: The cache files of the ci recipe on the dataset of ``_pinned_data``, computed with the library as it was before
#: ``TrainConfig`` had the fields augment and precision (keys hash ``asdict(cfg)`` of the six older fields). If a
#: change alters them, every user's cached models are silently retrained: that must be a deliberate decision.
PINNED = {"original": "original-7db878f612a6061679f2.pt", "retrain": "retrain-b04157a30ca3d7eddd36.pt",
          "replica": "retrain-4e04c9d0f86c4492aed4.pt", "subset": "subset-ca44799d5bfe54f431c3.pt"}


def _pinned_data():
    """Integer-valued tensors: their bytes, hence the data fingerprint, are the same on every machine."""
    from unlearnlib.data import Dataset

    x = torch.arange(40 * 64, dtype=torch.float32).reshape(40, 1, 8, 8) % 7
    y = torch.arange(40) % 10
    return Dataset("pin", x, y, x[:10].clone(), y[:10].clone(), 10)


def _cache_names(monkeypatch, tmp_path, cfg):
    """The file names the cache gives the original, the oracle, its replica 1 and a shadow, without training."""
    from unlearnlib import train

    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path))
    monkeypatch.setattr(train, "train_model", lambda model, *a, **k: model)   # the key, not the weights
    data = _pinned_data()
    task = make_task(data, "random", forget_fraction=0.25, seed=0)
    names = {}
    for kind, call in (("original", lambda: train.original_model(data, cfg, seed=0, device="cpu", progress=False)),
                       ("retrain", lambda: train.retrained_model(task, cfg, seed=0, device="cpu", progress=False)),
                       ("replica", lambda: train.retrained_model(task, cfg, seed=0, device="cpu", progress=False,
                                                                 replica=1)),
                       ("subset", lambda: train.subset_model(data, torch.arange(20), cfg, seed=3, device="cpu"))):
        tmp_path.mkdir(parents=True, exist_ok=True)
        before = set(tmp_path.iterdir())
        call()
        (new,) = set(tmp_path.iterdir()) - before
        names[kind] = new.name
    return names


def test_cache_keys_of_the_ci_recipe_are_pinned(monkeypatch, tmp_path):
    cfg = TrainConfig.from_profile(get_profile("ci"))
    assert _cache_names(monkeypatch, tmp_path, cfg) == PINNED


def test_new_recipe_options_enter_the_key_when_set(monkeypatch, tmp_path):
    ci = TrainConfig.from_profile(get_profile("ci"))
    names = _cache_names(monkeypatch, tmp_path / "a", replace(ci, augment="crop-flip"))
    assert not set(names.values()) & set(PINNED.values())
    other = _cache_names(monkeypatch, tmp_path / "b", replace(ci, precision="mixed"))
    assert not set(other.values()) & (set(PINNED.values()) | set(names.values()))


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------

def test_resnet18_is_the_cifar_variant_with_groupnorm():
    model = make_model("resnet18", (3, 32, 32), 10, seed=0)
    stem = model.stem[0]
    assert isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.modules.batchnorm._BatchNorm)) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 1 + 8 * 2 + 3   # stem, blocks, shortcuts
    # 11 173 962: the parameter count of the CIFAR ResNet-18 with 10 classes (BatchNorm's affine parameters, which
    # GroupNorm's replace one for one); an ImageNet stem (7x7 convolution) would add 6 272 weights.
    assert count_parameters(model) == 11_173_962
    sizes = []
    model.layers.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    model(torch.zeros(1, 3, 32, 32))
    assert sizes == [(4, 4)]    # 32 / 2**3: three stride-2 stages and no max-pool after the stem


# ---------------------------------------------------------------------------------------------------------------
# Data: synthetic images, the augmentation, CIFAR-10 from local files, the missing-files message
# ---------------------------------------------------------------------------------------------------------------

def test_synthetic_images_are_deterministic_standardised_rgb():
    d = synthetic_images(n_train=120, n_test=40, seed=3)
    assert d.x_train.shape == (120, 3, 32, 32) and d.x_test.shape == (40, 3, 32, 32) and d.num_classes == 10
    assert d.fingerprint() == synthetic_images(n_train=120, n_test=40, seed=3).fingerprint()
    assert d.fingerprint() != synthetic_images(n_train=120, n_test=40, seed=4).fingerprint()
    assert sorted(set(d.y_train.tolist())) == list(range(10))
    # Standardised with the training statistics: per channel, mean 0 and standard deviation 1 up to float32
    # rounding of a sum over 120·32·32 values (relative error well below 1e-4).
    mean, std = d.x_train.double().mean((0, 2, 3)), d.x_train.double().std((0, 2, 3), unbiased=False)
    assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-4
    with pytest.raises(UnlearnError, match="n_train"):
        synthetic_images(n_train=5, num_classes=10)


def test_crop_flip_matches_a_loop_over_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 8, 8, generator=g)
    offsets = torch.tensor([[2, 2], [0, 0], [4, 4], [0, 4], [3, 1], [2, 2]])
    flips = torch.tensor([False, False, True, True, False, True])
    out = crop_flip(x, offsets, flips, pad=2)
    padded = nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):   # the reference: one sample at a time, as torchvision's transforms do
        ref = padded[i, :, offsets[i, 0]:offsets[i, 0] + 8, offsets[i, 1]:offsets[i, 1] + 8]
        assert torch.equal(out[i], ref.flip(-1) if flips[i] else ref)
    assert torch.equal(out[0], x[0]) and torch.equal(out[5], x[5].flip(-1))   # centred crop: the image itself
    assert (out[1, :, :2, :] == 0).all()    # the top-left window reads the zero padding


def write_cifar10_folder(root: Path, x_train, y_train, x_test, y_test) -> Path:
    """A folder in CIFAR-10's python layout: ``cifar-10-batches-py`` with five training batches, a test batch and
    ``batches.meta``, each a pickled dict (images as rows of 3072 bytes, channel-major; labels as a list)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name, x, y):
        rows = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": rows, "labels": [int(v) for v in y]}, f)

    for i, part in enumerate(np.array_split(np.arange(len(x_train)), 5)):
        dump(f"data_batch_{i + 1}", x_train[part], y_train[part])
    dump("test_batch", x_test, y_test)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{c}" for c in range(10)]}, f)
    return folder


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    """Tiny CIFAR-10 files, read by torchvision's own CIFAR10 class. torchvision compares each file's MD5 with the
    real dataset's, which no file written here can match: that one check is replaced by an existence check."""
    cifar = pytest.importorskip("torchvision.datasets.cifar")
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y_train, y_test = np.arange(50) % 10, (np.arange(20) * 3) % 10
    write_cifar10_folder(tmp_path / "data", x_train, y_train, x_test, y_test)
    return tmp_path / "data", (x_train, y_train, x_test, y_test)


def test_cifar10_loads_from_local_files(tiny_cifar, monkeypatch):
    root, (x_train, y_train, x_test, y_test) = tiny_cifar
    d = load_dataset("cifar10", root=root)
    assert d.name == "cifar10" and d.num_classes == 10 and d.input_shape == (3, 32, 32)
    assert d.y_train.tolist() == y_train.tolist() and d.y_test.tolist() == y_test.tolist()
    # The pixels come through in channel-first order: per channel, the standardised image is an increasing affine
    # function of the raw bytes (the same for every image), so it orders the pixels exactly as the bytes do.
    raw = torch.from_numpy(x_train.transpose(0, 3, 1, 2).astype(np.float32))
    for c in range(3):
        a, b = raw[:, c].reshape(-1), d.x_train[:, c].reshape(-1)
        slope = ((b - b.mean()) * (a - a.mean())).sum() / ((a - a.mean()) ** 2).sum()
        assert slope > 0 and relative_errors(b, b.mean() + slope * (a - a.mean())).item() < 1e-5
    # The same files through UNLEARN_DATA_ROOT, as a chapter of the full profile finds them.
    monkeypatch.setenv("UNLEARN_DATA_ROOT", str(root))
    assert load_dataset("cifar10").fingerprint() == d.fingerprint()


def test_missing_cifar10_stops_the_bench_with_one_line(tmp_path, isolated_cache):
    from conftest import cli_env

    env = {**cli_env(isolated_cache), "UNLEARN_DATA_ROOT": str(tmp_path / "nothing")}
    run = subprocess.run([sys.executable, "-m", "unlearnlib.bench", "--dataset", "cifar10"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CIFAR-10 under "), run.stderr
    assert "python -m unlearnlib.data cifar10 --download" in lines[0] and "UNLEARN_DATA_ROOT" in lines[0]
    assert not (tmp_path / "nothing").exists()     # nothing was downloaded or created


def test_missing_cifar10_names_the_root_in_the_command(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARN_DATA_ROOT", raising=False)
    with pytest.raises(DatasetMissing) as info:
        load_dataset("cifar10", root=tmp_path / "my data")
    message = str(info.value)
    assert "\n" not in message and f"--download --data-root '{tmp_path / 'my data'}'" in message
    (tmp_path / "my data" / "cifar-10-batches-py").mkdir(parents=True)      # a partial folder is named as such
    with pytest.raises(DatasetMissing, match="incomplete or damaged"):
        load_dataset("cifar10", root=tmp_path / "my data")


def test_missing_dataset_stops_a_notebook_cell_with_one_line(tmp_path, capfd):
    """IPython renders the exception with its ``_render_traceback_``: the chapter stops on the one line."""
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        result = shell.run_cell(f"from unlearnlib.data import load_dataset\n"
                                f"load_dataset('cifar10', root={str(tmp_path / 'nothing')!r})")
    finally:
        interactiveshell.InteractiveShell.clear_instance()
    assert isinstance(result.error_in_exec, DatasetMissing)
    shown = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].startswith("error: CIFAR-10 under "), shown
    assert "Traceback" not in shown[0]


# ---------------------------------------------------------------------------------------------------------------
# Training and unlearning ResNet-18 on the CPU (tiny synthetic set)
# ---------------------------------------------------------------------------------------------------------------

def test_resnet18_trains_one_epoch_and_unlearns_on_the_cpu():
    from unlearnlib.methods import get_method

    data = synthetic_images(n_train=32, n_test=8, seed=0)
    cfg = replace(TrainConfig.from_profile(get_profile("full")), epochs=1, batch_size=16)
    model = make_model(cfg.model, data.input_shape, data.num_classes, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_model(model, data.x_train, data.y_train, cfg, seed=0, progress=False)
    after = model.state_dict()
    assert all(torch.isfinite(v).all() and v.dtype == torch.float32 for v in after.values())   # fp32 on the CPU
    assert any(not torch.equal(before[k], after[k]) for k in before)
    task = make_task(data, "random", forget_fraction=0.25, seed=0)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    out = get_method("pcgrad")(model, task, steps=2, stop_at=None, batch_size=4)
    assert all(torch.equal(v, theta0[k]) for k, v in model.state_dict().items())   # the input is untouched
    assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), model.parameters()))
    assert all(torch.isfinite(p).all() for p in out.parameters())


def test_augmentation_keeps_the_batch_order_and_changes_the_inputs(monkeypatch):
    """With crop-flip the batches hold the same samples in the same order as without (the crops have their own
    generator), every image is cropped and flipped afresh each epoch, and the model sees the augmented images."""
    from unlearnlib import data as data_module
    from unlearnlib import train

    data = synthetic_images(n_train=40, n_test=10, seed=1)
    batches, crops = {}, []

    def spy(x, offsets, flips, pad):
        out = data_module.crop_flip(x, offsets, flips, pad)
        crops.append((x.clone(), offsets.clone(), out.clone()))
        return out

    monkeypatch.setattr(train, "crop_flip", spy)
    for augment in ("none", "crop-flip"):
        model = make_model("mlp", data.input_shape, 10, seed=0)
        inputs = []
        model.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()))
        train.train_model(model, data.x_train, data.y_train, TrainConfig(model="mlp", epochs=2, batch_size=16,
                                                                         augment=augment), progress=False)
        batches[augment] = inputs[1:]    # the first call is the one-sample label check
    assert len(crops) == len(batches["none"]) == len(batches["crop-flip"]) == 2 * 3
    for plain, seen, (raw, offsets, out) in zip(batches["none"], batches["crop-flip"], crops):
        assert torch.equal(raw, plain) and torch.equal(seen, out)
    assert not any(torch.equal(a, b) for a, b in zip(batches["none"], batches["crop-flip"]))


# ---------------------------------------------------------------------------------------------------------------
# Mixed precision: the training on CUDA, and the gradient algebra in float32 under autocast
# ---------------------------------------------------------------------------------------------------------------

def _grads_functions(model, x, y):
    """Every per-sample and projection function of unlearnlib.grads on one batch."""
    from unlearnlib import grads

    G = grads.flatten_batched(grads.per_sample_grads(model, x, y))
    g = grads.loss_grad(model, x, y)
    factors = grads.per_sample_factors(model, x, y)
    K, d = factors.gram_dots(grads.unflatten(g, grads.trainable(model)))
    return {"per_sample_grads": G, "loss_grad": g,
            "per_sample_grads_loop": grads.flatten_batched(grads.per_sample_grads_loop(model, x, y)),
            "gram": K, "gram_d": d, "gram_coefficients": grads.gram_coefficients(K, d),
            "combine": grads.flatten(factors.combine(torch.full((len(y),), 1 / len(y), device=x.device))),
            "moments": grads.flatten(factors.moments()[1]),
            "project_orthogonal": grads.project_orthogonal(g, G[1:]),
            "pcgrad": grads.pcgrad([G[0], G[1]]), "unilateral_surgery": grads.unilateral_surgery(G[0], G[1])[0],
            "harmonize": torch.cat(grads.harmonize(G[0], G[1]))}


def test_gradient_algebra_runs_in_float32_under_cpu_autocast():
    """Inside a bfloat16 autocast region every function gives exactly its float32 result (the same kernels run:
    autocast is off inside them); without the guard the per-sample gradients come from bfloat16 activations."""
    from unlearnlib import grads

    model = make_model("cnn", (3, 32, 32), 10, seed=0)
    data = synthetic_images(n_train=20, n_test=5, seed=0)
    x, y = data.x_train[:6], data.y_train[:6]
    plain = _grads_functions(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = _grads_functions(model, x, y)
        unguarded = grads.flatten_batched(grads.per_sample_grads.__wrapped__(model, x, y))
    for name, value in plain.items():
        assert mixed[name].dtype == value.dtype and value.dtype in (torch.float32, torch.float64), name
        assert torch.equal(mixed[name], value), name
    # Planted: the same computation with autocast active. bfloat16 keeps 8 significant bits (a rounding error of up
    # to 2^-8, about 4e-3, relative), far above float32's error model for this network.
    err = relative_errors(unguarded, plain["per_sample_grads"]).max().item()
    assert err > 10 * gradient_rtol(model, x[:1])


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="mixed precision runs on CUDA only; the CPU trains in float32")
def test_mixed_precision_training_on_cuda():
    from unlearnlib import grads
    from unlearnlib.train import _autocast_dtype

    device = torch.device("cuda")
    data = synthetic_images(n_train=256, n_test=64, seed=0).to(device)
    cfg = replace(TrainConfig.from_profile(get_profile("full")), epochs=2, batch_size=64)
    dtype = _autocast_dtype(cfg, device)
    assert dtype in (torch.bfloat16, torch.float16)
    model = make_model(cfg.model, data.input_shape, 10, seed=0).to(device)
    seen = []
    model.stem[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
    train_model(model, data.x_train, data.y_train, cfg, progress=False)
    assert set(seen) == {dtype}                                  # the convolutions ran in half precision
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    # The gradient algebra inside an autocast region: float32, equal to outside it up to float32 rounding.
    x, y = data.x_train[:4], data.y_train[:4]
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        plain = grads.flatten_batched(grads.per_sample_grads(model, x, y))
        with torch.autocast("cuda", dtype=dtype):
            mixed = grads.flatten_batched(grads.per_sample_grads(model, x, y))
            unguarded = grads.flatten_batched(grads.per_sample_grads.__wrapped__(model, x, y))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    rtol = gradient_rtol(model, x[:1])
    assert mixed.dtype == torch.float32 and relative_errors(mixed, plain).max().item() < rtol
    assert relative_errors(unguarded, plain).max().item() > rtol          # planted: autocast left on


# ---------------------------------------------------------------------------------------------------------------
# The GPU benchmark script: its CPU-checkable parts
# ---------------------------------------------------------------------------------------------------------------

def _rows_module():
    spec = importlib.util.spec_from_file_location("realistic_rows", REPO / "benchmarks" / "realistic_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_realistic_rows_smoke_on_the_cpu(tmp_path):
    rows = _rows_module()
    out = tmp_path / "rows"
    assert rows.main(["--smoke", "--device", "cpu", "--out", str(out), "train"]) == 0
    for name in ("ga", "pcgrad"):
        assert rows.main(["--smoke", "--device", "cpu", "--out", str(out), "method", name]) == 0
    assert rows.main(["--out", str(out), "report"]) == 0
    report = json.loads((out / "realistic_rows.json").read_text())
    assert report["setting"]["train_config"]["augment"] == "crop-flip"
    for name in ("ga", "pcgrad"):
        r = report["rows"][name]
        assert r["time_s"] > 0 and r["passes"] > 0
        assert r["time_vs_retrain"] == pytest.approx(r["time_s"] / report["retrain"]["time_s"])
        scale = report["setting"]["profile_epochs"] / report["retrain"]["epochs"]
        assert r["passes_vs_retrain_profile_epochs"] == pytest.approx(r["passes_vs_retrain"] / scale)
    verdict = report["target_holds"]["pcgrad"]
    assert verdict["measured"] == (report["rows"]["pcgrad"]["time_vs_retrain"] <= 0.1)
    # Steps that did not run are reported as not measured, never as meeting the target.
    assert report["rows"]["orthograd"] is None and report["target_holds"]["orthograd"] is None
    assert report["target_holds_for_all"] is None
    assert rows.main(["--smoke", "--device", "cpu", "--out", str(out), "method", "nonsense"]) == 2


def test_run_gpu_script_plans_every_step_within_its_budget(tmp_path):
    assert subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "run_gpu.sh")]).returncode == 0
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", str(REPO / "benchmarks" / "run_gpu.sh")], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
    run = subprocess.run(["bash", "benchmarks/run_gpu.sh", "--dry-run", str(tmp_path / "gpu")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    steps = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("step ")]
    rows = _rows_module()
    assert steps[:2] == ["tests", "rows_train"]
    assert [s for s in steps if s.startswith("rows_")] == (["rows_train"] + [f"rows_{m}" for m in rows.METHODS]
                                                           + ["rows_report"])
    assert {"step_cost_resnet18_b32", "step_cost_resnet18_b128", "chapter_05"} <= set(steps)
    assert "budget of 450 s" in run.stdout      # 450 s of steps, the device query and the summary: under 8 minutes
    assert not (tmp_path / "gpu" / "realistic").exists()    # a dry run runs nothing
