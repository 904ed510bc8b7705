"""Optional CUDA-graph capture of the training step and of the sampling loop (issue 23).

A GPU spends most of a small denoiser's step launching kernels, not running them. A
``torch.cuda.CUDAGraph`` records the kernels of one call once and replays them with one
launch. :class:`GraphStep` wraps a step function that reads and writes fixed ("static")
tensors: it runs the function eagerly for a few warm-up calls on a side stream (as
PyTorch's whole-network capture recipe requires, so lazy initialisation and the caching
allocator settle outside the capture), captures it with ``torch.cuda.graph``, and replays
the graph on every later call. If the capture raises (a host read, a CPU tensor, an
operation a graph cannot hold), it warns once, restores a clean state and stays eager.

Randomness stays outside the graph: the callers draw each call's random numbers from
their ``torch.Generator`` eagerly, in the eager loop's order, and copy them into the static
tensors, so a captured run consumes the generator exactly as an eager run does.

Modes (``capture=`` of :func:`~tardiff.diffusion.train_diffusion`'s ``TrainConfig`` and of
:meth:`~tardiff.diffusion.GaussianDiffusion.sample`):

- ``"off"``: always eager.
- ``"on"``: capture on CUDA devices; on any other device it is a no-op (eager, no error).
- ``"auto"`` (the default): currently eager on every device. auto becomes capture on CUDA
  once benchmarks/gpu-check has shown captured and eager runs agree on a GPU; until then
  only 'on' captures, so nobody gets an unverified path by default.
"""

from __future__ import annotations

import warnings
from typing import Callable, Literal, get_args

import torch

from tardiff.errors import ParameterError

CaptureMode = Literal["auto", "on", "off"]
CAPTURE_MODES: tuple[str, ...] = get_args(CaptureMode)

#: Eager calls before capture (PyTorch's recipe warms up a few iterations on a side stream).
WARMUP_CALLS = 3


class CaptureWarning(UserWarning):
    """CUDA-graph capture failed and the loop runs eagerly instead (same numbers, slower)."""


def check_capture_mode(mode) -> str:
    """``mode`` if it is one of "auto", "on", "off"; else a one-line :class:`~tardiff.errors.ParameterError`.

    Examples
    --------
    >>> check_capture_mode("on")
    'on'
    """
    if not isinstance(mode, str) or mode not in CAPTURE_MODES:
        raise ParameterError(f"unknown capture mode {mode!r}; choose 'auto', 'on' or 'off'")
    return mode


def capture_applies(mode: str, device) -> bool:
    """Whether a loop on ``device`` runs captured under ``mode``: only "on", and only on CUDA.

    Examples
    --------
    >>> capture_applies("on", "cpu"), capture_applies("auto", "cpu"), capture_applies("off", "cpu")
    (False, False, False)
    """
    check_capture_mode(mode)
    # "auto" stays eager until a GPU run of benchmarks/gpu-check shows both paths agree.
    return mode == "on" and torch.device(device).type == "cuda"


def eager_status(mode: str, device) -> str:
    """Why a loop on ``device`` under ``mode`` runs eagerly, as the status callers report.

    Examples
    --------
    >>> eager_status("on", "cpu"), eager_status("off", "cpu")
    ('eager (cpu)', 'eager (off)')
    """
    check_capture_mode(mode)
    kind = torch.device(device).type
    if mode == "off":
        return "eager (off)"
    if kind != "cuda":
        return f"eager ({kind})"
    return "eager (auto: capture not yet verified on a GPU)"


def _run_on_side_stream(fn: Callable):
    """``fn()`` on a side stream, ordered after and before the current stream's work (a warm-up call)."""
    stream = torch.cuda.Stream()  # from PyTorch's stream pool: cheap, and warm-up calls are few
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = fn()
    torch.cuda.current_stream().wait_stream(stream)
    return out


def _cuda_capture(fn: Callable):
    """Record ``fn()`` into a new CUDA graph; return the graph and ``fn``'s (static) output."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


class GraphStep:
    """Call ``fn`` eagerly ``warmup`` times on a side stream, then capture it once and replay it.

    ``fn`` takes no arguments: it reads its inputs from static tensors the caller refills
    before each call, and returns its outputs, which after capture are static too (the
    next replay overwrites them; clone what must be kept). Every call, warm-up, capture
    and replay alike, performs ``fn``'s work once, so nothing is wasted or repeated.

    Parameters
    ----------
    fn : callable
        The step, without host reads (a graph cannot hold them).
    enabled : bool
        False: every call runs ``fn`` eagerly (``status`` says ``eager_reason``).
    label : str
        What ``fn`` is, for the warning and status (e.g. "the training step").
    warmup : int
        Eager calls before the capture.
    before_capture : callable, optional
        Called just before capturing (e.g. to make an optimizer capturable).
    on_failure : callable, optional
        Called after a failed capture to restore a clean state (e.g. drop gradients
        allocated during the capture) before the call runs eagerly.
    eager_reason : str
        The status when not ``enabled``.
    warm, capture : callable, optional
        The warm-up runner ``warm(fn)`` and the capture ``capture(fn) -> (graph, out)``;
        default (looked up when called): this module's ``_run_on_side_stream`` (a CUDA side
        stream) and ``_cuda_capture`` (:func:`torch.cuda.graph`). Tests inject fakes here.

    Examples
    --------
    >>> step = GraphStep(lambda: 1 + 1, enabled=False, eager_reason="eager (cpu)")
    >>> step(), step.status
    (2, 'eager (cpu)')
    """

    def __init__(self, fn: Callable, *, enabled: bool, label: str = "the step", warmup: int = WARMUP_CALLS,
                 before_capture: Callable | None = None, on_failure: Callable | None = None,
                 eager_reason: str = "eager (off)", warm: Callable | None = None, capture: Callable | None = None):
        if warmup < 0:
            raise ParameterError(f"warmup must be >= 0, got {warmup}")
        self.fn, self.enabled, self.label, self.warmup = fn, bool(enabled), label, int(warmup)
        self.before_capture, self.on_failure = before_capture, on_failure
        self._warm, self._capture = warm, capture
        self._calls = 0
        self._graph = None
        self._out = None
        self._status = "warm-up" if self.enabled else eager_reason

    @property
    def status(self) -> str:
        """How the calls run: "captured", "warm-up" (not captured yet), or "eager (<why>)"."""
        return self._status

    def __call__(self):
        if self._graph is not None:
            self._graph.replay()
            return self._out
        if not self.enabled:
            return self.fn()
        if self._calls < self.warmup:
            self._calls += 1
            return (self._warm or _run_on_side_stream)(self.fn)
        try:
            if self.before_capture is not None:
                self.before_capture()
            # Looked up at call time, so a test can replace the module's entry point.
            graph, out = (self._capture or _cuda_capture)(self.fn)
        except Exception as err:  # any capture failure: the loop must still run, eagerly
            self._fall_back(err)
            return self.fn()
        # Capturing records the kernels without running them: replay once to do this call's work.
        graph.replay()
        self._graph, self._out, self._status = graph, out, "captured"
        return out

    def _fall_back(self, err: Exception) -> None:
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0][:160] if lines else ''}".rstrip(": ")
        warnings.warn(f"CUDA-graph capture of {self.label} failed ({reason}); falling back to eager",
                      CaptureWarning, stacklevel=3)
        self.enabled = False
        self._status = f"eager (capture failed: {reason})"
        if self.on_failure is not None:
            self.on_failure()
