"""Optional CUDA-graph capture (issue 23): the modes, the eager fallback, and that nothing changes on a CPU.

No GPU runs here: capture itself is checked by benchmarks/gpu-check on a CUDA machine. These tests
pin what a CPU can: every mode gives the eager numbers, the helper's state machine and its fallback
(with a fake capture), and the split of the training loss into draws and a draw-free part.
"""

import warnings

import numpy as np
import pytest
import torch

from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, train_diffusion
from tardiff.diffusion.process import _randn
from tardiff.errors import ParameterError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the split training loss
def _old_training_loss(process, model, x0, y, *, generator=None, label_dropout=0.0, null_label=None):
    """GaussianDiffusion.training_loss as it was before the split (copied verbatim, less the checks)."""
    batch = x0.shape[0]
    draw_device = generator.device if generator is not None else x0.device
    t = torch.randint(0, process.n_steps, (batch,), generator=generator, device=draw_device).to(x0.device)
    noise = _randn(x0.shape, generator, x0.device)
    y = torch.as_tensor(y, dtype=torch.long, device=x0.device).reshape(-1)
    if label_dropout > 0:
        null = process._null_label(model, null_label)
        drop = (torch.rand(batch, generator=generator, device=draw_device) < label_dropout).to(x0.device)
        y = torch.where(drop, torch.full_like(y, null), y)
    x_t = process.q_sample(x0, t, noise)
    eps = model(x_t, t, y)
    if process.loss_type == "l2":
        return torch.mean((noise - eps) ** 2)
    return torch.mean(torch.abs(noise - eps))


@pytest.mark.parametrize("loss_type", ["l2", "l1"])
@pytest.mark.parametrize("label_dropout", [0.0, 0.3])
def test_split_training_loss_equals_the_old_one_exactly(loss_type, label_dropout):
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 50), loss_type=loss_type)
    net = UNet1D(UNetConfig.preset("smoke"), n_features=3, seed=0)
    x0 = torch.randn(12, 8, 3, generator=gen(1))
    y = torch.arange(12) % 2
    g_new, g_old = gen(5), gen(5)
    for _ in range(3):  # consecutive batches: the generator is consumed identically
        new = process.training_loss(net, x0, y, generator=g_new, label_dropout=label_dropout)
        old = _old_training_loss(process, net, x0, y, generator=g_old, label_dropout=label_dropout)
        assert torch.equal(new, old)
    assert torch.equal(g_new.get_state(), g_old.get_state())


def test_draws_then_loss_from_draws_is_training_loss():
    process = GaussianDiffusion(beta_schedule("linear", 20))
    net = UNet1D(UNetConfig.preset("smoke"), n_features=2, seed=0)
    x0, y = torch.randn(6, 8, 2, generator=gen(2)), torch.zeros(6, dtype=torch.long)
    draws = process.training_draws(x0, generator=gen(7), label_dropout=0.5)
    assert draws.drop is not None and draws.drop.dtype == torch.bool
    split = process.loss_from_draws(net, x0, y, draws, null_label=net.null_label)
    assert torch.equal(split, process.training_loss(net, x0, y, generator=gen(7), label_dropout=0.5))
    assert process.training_draws(x0, generator=gen(7)).drop is None


# ------------------------------------------------------------------ modes
def test_capture_modes_and_where_they_apply():
    from tardiff.diffusion.capture import capture_applies, check_capture_mode, eager_status

    assert [check_capture_mode(m) for m in ("auto", "on", "off")] == ["auto", "on", "off"]
    for bad in ("yes", "ON", None, True):
        with pytest.raises(ParameterError, match="capture mode") as err:
            check_capture_mode(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="capture mode"):
        TrainConfig(capture="sometimes")
    # Only "on" captures, only on CUDA; "auto" stays eager until a GPU has verified capture.
    assert capture_applies("on", "cuda") and capture_applies("on", torch.device("cuda", 0))
    assert not any(capture_applies(m, "cpu") for m in ("auto", "on", "off"))
    assert not capture_applies("auto", "cuda") and not capture_applies("off", "cuda")
    assert eager_status("on", "cpu") == eager_status("auto", "cpu") == "eager (cpu)"
    assert eager_status("off", "cuda") == "eager (off)" and eager_status("auto", "cuda").startswith("eager (auto")


# ------------------------------------------------------------------ the helper's state machine (fakes)
class _FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: capture records without running; replay runs into static outputs."""

    def __init__(self, fn, out):
        self.fn, self.out = fn, out

    def replay(self):
        self.out.copy_(self.fn())


def _fake_capture(like):
    def capture(fn):
        out = torch.empty_like(like)
        return _FakeGraph(fn, out), out
    return capture


def _failing_capture(fn):
    raise RuntimeError("operation not permitted when stream is capturing\nsecond line of the error")


def _counter():
    calls = []

    def fn():
        calls.append(1)
        return torch.tensor(float(len(calls)))
    return fn, calls


def test_graph_step_warms_up_captures_once_and_replays():
    from tardiff.diffusion.capture import GraphStep

    fn, calls = _counter()
    step = GraphStep(fn, enabled=True, warmup=2, warm=lambda f: f(), capture=_fake_capture(torch.zeros(())))
    outs = [float(step()) for _ in range(5)]
    # Every call does the work once: 2 warm-up calls, the capture call (recorded, then replayed), 2 replays.
    assert outs == [1.0, 2.0, 3.0, 4.0, 5.0] and len(calls) == 5
    assert step.status == "captured"


def test_graph_step_falls_back_with_one_warning():
    from tardiff.diffusion.capture import CaptureWarning, GraphStep

    fn, calls = _counter()
    cleaned = []
    step = GraphStep(fn, enabled=True, warmup=1, label="the test step", warm=lambda f: f(),
                     capture=_failing_capture, on_failure=lambda: cleaned.append(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [float(step()) for _ in range(4)]
    assert outs == [1.0, 2.0, 3.0, 4.0] and len(calls) == 4 and cleaned == [1]
    assert len(caught) == 1 and caught[0].category is CaptureWarning
    message = str(caught[0].message)
    assert "\n" not in message and "the test step" in message and "eager" in message and "RuntimeError" in message
    assert step.status.startswith("eager (capture failed: RuntimeError: operation not permitted")


# ------------------------------------------------------------------ training
def _train(capture="off", iterations=6, **overrides):
    X = np.random.default_rng(0).normal(size=(24, 8, 2)).astype(np.float32)
    y = np.arange(24) % 2
    net = UNet1D(UNetConfig.preset("smoke"), 2, seed=0)
    config = TrainConfig.preset("smoke", iterations=iterations, batch_size=8, label_dropout=0.2, capture=capture,
                                **overrides)
    return train_diffusion(net, GaussianDiffusion(beta_schedule("sqrt_linear", 20)), X, y, config, seed=1,
                           progress=False)


def _same_training(a, b):
    assert a.losses == b.losses
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_every_mode_trains_eagerly_and_identically_on_cpu():
    off = _train("off")
    for mode in ("auto", "on"):
        result = _train(mode)
        _same_training(result, off)
        assert result.capture == "eager (cpu)"
    assert off.capture == "eager (off)" and len(off.losses) == 6


@pytest.fixture
def forced_capture(monkeypatch):
    """Capture "on" applies on the CPU ("off" stays eager) and warm-up runs inline: the captured paths run on a CPU."""
    from tardiff.diffusion import capture, process, training

    monkeypatch.setattr(training, "capture_applies", lambda mode, device: mode == "on")
    monkeypatch.setattr(process, "capture_applies", lambda mode, device: mode == "on")
    monkeypatch.setattr(capture, "_run_on_side_stream", lambda fn: fn())
    return capture


def test_captured_training_step_gives_the_eager_numbers(forced_capture, monkeypatch):
    """Static draws, lr, EMA weight through warm-up, capture and replays (a fake graph) = the eager run."""
    monkeypatch.setattr(forced_capture, "_cuda_capture", _fake_capture(torch.zeros(())))
    result = _train("on")
    assert result.capture == "captured"
    _same_training(result, _train("off"))


def test_failed_training_capture_warns_once_and_stays_eager(forced_capture, monkeypatch):
    monkeypatch.setattr(forced_capture, "_cuda_capture", _failing_capture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _train("on")
    assert [w.category for w in caught] == [forced_capture.CaptureWarning]
    assert result.capture.startswith("eager (capture failed: RuntimeError")
    _same_training(result, _train("off"))  # every step ran once: the failed one eagerly


def test_dropout_models_are_never_captured(forced_capture):
    X, y = np.zeros((8, 8, 1), dtype=np.float32), np.zeros(8, dtype=np.int64)
    net = UNet1D(UNetConfig(base_channels=8, channel_mults=(1,), n_res_blocks=1, attention_levels=(), norm_groups=4,
                            dropout=0.1), 1, seed=0)
    result = train_diffusion(net, GaussianDiffusion(beta_schedule("linear", 10)), X, y,
                             TrainConfig.preset("smoke", iterations=2, capture="on"), progress=False)
    assert result.capture.startswith("eager (dropout")


# ------------------------------------------------------------------ the setting leaves keys and checkpoints alone
def test_capture_is_not_in_cache_keys():
    from tardiff.data.cache import hash_key

    # hash_key(asdict(TrainConfig.preset(scale))) before the field existed (the denoiser cache key's part).
    before = {"smoke": "9fefcb8846ed7a65", "cpu": "f3bc0136dea496e8", "paper": "91800cd112d1da1b"}
    for scale, key in before.items():
        for mode in ("auto", "on", "off"):
            assert hash_key(TrainConfig.preset(scale, capture=mode).key()) == key


def test_checkpoint_without_the_capture_field_resumes(tmp_path):
    from tardiff.data.checkpoints import save_checkpoint

    X = np.random.default_rng(0).normal(size=(16, 8, 2)).astype(np.float32)
    y = np.arange(16) % 2

    def run(iterations, capture, path=None):
        config = TrainConfig.preset("smoke", iterations=iterations, batch_size=4, capture=capture)
        return train_diffusion(UNet1D(UNetConfig.preset("smoke"), 2, seed=0),
                               GaussianDiffusion(beta_schedule("linear", 10)), X, y, config, seed=2,
                               checkpoint_path=path, progress=False)

    path = tmp_path / "old.pt"
    run(3, "off", path)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["train_config"]["capture"]  # as written before the field existed
    save_checkpoint(path, ckpt)
    assert run(5, "on", path).losses == run(5, "auto").losses  # resumed, not refused, and the same numbers


# ------------------------------------------------------------------ sampling
def _guide(x, t, y, x0_hat=None):
    """A cond_fn that runs autograd, as TarDiff's influence guidance does."""
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad((torch.tanh(x) ** 2).sum(), x)
    return -0.01 * grad


def _sampling_setup():
    net = UNet1D(UNetConfig.preset("smoke"), 2, seed=0).eval()
    return GaussianDiffusion(beta_schedule("sqrt_linear", 50)), net


def _samples(process, net, capture, shapes=((4, 8, 2),) * 3, **kwargs):
    g = gen(11)
    return [process.sample(net, shape, [0, 1] * (shape[0] // 2), n_steps=5, eta=1.0, cond_fn=_guide,
                           guide_last_k=3, generator=g, capture=capture, **kwargs) for shape in shapes]


def test_every_mode_samples_eagerly_and_identically_on_cpu():
    process, net = _sampling_setup()
    off = _samples(process, net, "off")
    for mode in ("auto", "on"):
        assert all(torch.equal(a, b) for a, b in zip(_samples(process, net, mode), off))
        assert process.capture_status == "eager (cpu)"
    with pytest.raises(ParameterError, match="capture mode"):
        process.sample(net, (2, 8, 2), 0, capture="always")


def test_captured_sampling_gives_the_eager_numbers(forced_capture, monkeypatch):
    """Pre-drawn x_T and step noise (static inputs), warm-up, capture and replays (a fake graph) = eager sampling."""
    process, net = _sampling_setup()
    monkeypatch.setattr(forced_capture, "_cuda_capture", _fake_capture(torch.zeros(4, 8, 2)))
    captured = _samples(process, net, "on")
    assert process.capture_status == "captured" and len(process._graphs) == 1
    assert all(torch.equal(a, b) for a, b in zip(captured, _samples(process, net, "off")))
    assert not captured[1].data_ptr() == captured[2].data_ptr()  # each call returns its own tensor
    x_T = torch.randn(4, 8, 2, generator=gen(3))
    given = _samples(process, net, "on", shapes=((4, 8, 2),), x_T=x_T)[0]
    assert torch.equal(given, _samples(process, net, "off", shapes=((4, 8, 2),), x_T=x_T)[0])


def test_failed_sampling_capture_warns_once_and_stays_eager(forced_capture, monkeypatch):
    process, net = _sampling_setup()
    monkeypatch.setattr(forced_capture, "_cuda_capture", _failing_capture)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        captured = _samples(process, net, "on", shapes=((4, 8, 2),) * 4)
    assert [w.category for w in caught] == [forced_capture.CaptureWarning]
    assert process.capture_status.startswith("eager (capture failed")
    off = _samples(process, net, "off", shapes=((4, 8, 2),) * 4)
    assert all(torch.equal(a, b) for a, b in zip(captured, off))


# ------------------------------------------------------------------ the GPU check's comparison
def test_capture_check_reports_statuses_only_where_capture_does_not_apply():
    from tardiff.benchmark import capture_check

    assert capture_check("cpu") == {"compared": False, "train": {"status_on": "eager (cpu)"},
                                    "sample": {"status_on": "eager (cpu)"}}


def test_capture_check_compares_both_ways(forced_capture, monkeypatch):
    """The comparison benchmarks/gpu-check runs on a GPU, here with a capture that fails (so it runs on a CPU)."""
    import json

    from tardiff.benchmark import capture_check

    monkeypatch.setattr(forced_capture, "capture_applies", lambda mode, device: mode == "on")
    monkeypatch.setattr(forced_capture, "_cuda_capture", _failing_capture)
    with pytest.warns(forced_capture.CaptureWarning):
        report = capture_check("cpu", iterations=5, n_stays=8, shape=(8, 2), sample_batch_size=4, ddim_steps=3, calls=2)
    train, sample = report["train"], report["sample"]
    assert report["compared"] and not report["agree"]  # eager both ways: equal numbers, but nothing captured
    assert train["status_off"] == "eager (off)" and train["status_on"].startswith("eager (capture failed")
    assert train["max_abs_loss_diff"] == train["max_abs_ema_weight_diff"] == sample["max_abs_sample_diff"] == 0.0
    assert len(sample["s_per_call_on"]) == 2 and train["s_per_step_on"] > 0
    json.dumps(report, allow_nan=False)
