"""One registry each for methods, protocols and evaluators: what everything else reads.

The runner, the figures, the report tables, the book, the CLI's help and the notebooks know
a method, a protocol or an evaluator only through these entries: its name, its label, its
colour, its role and how to build it. Adding a baseline is its sampler module plus one
:func:`register_method` call; adding an evaluator is one :func:`register_evaluator` call.

Examples
--------
>>> [m.name for m in methods(role="baseline")]
['smote', 'mcrage', 'unguided']
>>> method("tardiff").label
'TarDiff'
>>> protocol("tsrtr").label
'TSRTR'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from tardiff.errors import ParameterError

Role = Literal["reference", "control", "baseline", "tardiff"]

#: The shared components a method's factory may ask for, each trained once per replicate (in this
#: order: a task graph trains them before any method's sets).
COMPONENTS = ("denoiser", "guidance_classifier")

#: Colour-blind-safe colours (seaborn's "colorblind" palette, then Paul Tol's "muted" one). Each
#: built-in method declares its colour with its entry; a method registered without one gets the
#: first of these that no built-in claims (:data:`BUILTIN_COLORS`) and no registered method uses.
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
           "#ece133", "#56b4e9", "#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77",
           "#cc6677", "#882255", "#aa4499")
GREY = "#949494"


# --------------------------------------------------------------------------- methods
@dataclass
class MethodContext:
    """What a method's factory may use to build its sampler for one seed.

    The experiment runner fills it; the callables train (or fetch from the cache) the shared
    components only when a factory asks for them.
    """

    seed: int
    scale: str
    device: str
    progress: bool
    guidance: Any = None  # tardiff.guidance.GuidanceOptions
    denoiser: Callable[[], Any] | None = None  # the trained label-conditional UNet of this seed
    guidance_classifier: Callable[[], Any] | None = None  # the fitted classifier TarDiff differentiates
    guidance_set: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None  # (X, y) that G averages over
    tuned: float | None = None  # the value of the method's tuned parameter (Method.tuned), if it has one


@dataclass(frozen=True)
class Method:
    """One method of the comparison.

    Parameters
    ----------
    name : str
        Identifier used in configs, results and on the command line.
    label : str
        What readers see in tables and figures.
    role : {"reference", "control", "baseline", "tardiff"}
        ``reference``: real data only; ``control``: a simple remedy for imbalance that
        generates nothing new (run beside the reference); ``baseline``: a generator TarDiff is
        compared with; ``tardiff``: TarDiff itself.
    protocols : tuple of str
        The evaluation protocols (names in :data:`PROTOCOLS`) the method is judged under.
    factory : callable or None
        ``factory(context: MethodContext) -> sampler`` (an unfitted imbalanced-learn style
        sampler); None when the method trains on real data only.
    color : str, optional
        Hex colour of the method in every figure. Built-in methods declare theirs; None: the first
        colour of :data:`PALETTE` that no built-in claims and no registered method uses (see
        :func:`register_method`).
    class_weight : bool
        The evaluators train with a class-weighted loss (the ``real_cw`` control).
    synthetic : bool
        The sampler creates new rows (they pass the quality gate before they are ranked).
    guidance : {None, "config", "calibrated"}
        Which guidance options build it: none, the run's own (``--guidance-scale``, ...; the
        paper's setting by default) or the calibrated ones the run selects on validation AUPRC
        from its guidance sweep. They join the synthetic data's cache key.
    components : tuple of str
        The shared, trained components its factory asks the context for ("denoiser",
        "guidance_classifier"): a task scheduler trains them first, once per seed.
    unguided_twin : str, optional
        The method whose draws this guided method's are at guidance scale 0 (TarDiff without
        guidance is the unguided sampler, draw for draw): a choice of 0 reuses that method's sets.
    tuned : (parameter, candidates, protocol), optional
        A sampling parameter chosen in every replicate on its model-selection data (the
        ``select`` stays, never the test split) among ``candidates``, from one fitted sampler
        (MCRAGE's classifier-free guidance weight), by the main evaluator's AUPRC under
        ``protocol``. The factory receives the value as ``context.tuned``.
    """

    name: str
    label: str
    role: Role
    protocols: tuple[str, ...]
    factory: Callable[[MethodContext], Any] | None = None
    color: str | None = None
    class_weight: bool = False
    synthetic: bool = False
    guidance: Literal["config", "calibrated"] | None = None
    components: tuple[str, ...] = ()
    tuned: tuple[str, tuple[float, ...], str] | None = None
    unguided_twin: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ("reference", "control", "baseline", "tardiff"):
            raise ParameterError(f"method {self.name!r}: role must be one of {', '.join(ROLE_ORDER)}")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            raise ParameterError(f"method {self.name!r}: protocols must be a non-empty subset of "
                                 f"{', '.join(PROTOCOLS)}; got {list(self.protocols)}")
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise ParameterError(f"method {self.name!r}: unknown components {sorted(unknown)}; "
                                 f"choose from {', '.join(COMPONENTS)}")
        needs_generator = any(PROTOCOLS[p].needs_generator for p in self.protocols)
        if needs_generator and self.factory is None:
            raise ParameterError(f"method {self.name!r}: protocols {list(self.protocols)} need a factory")

    @property
    def uses_guidance(self) -> bool:
        """Whether the synthetic data depends on guidance options."""
        return self.guidance is not None

    @property
    def needs_pool(self) -> bool:
        """Whether a pool of training size (TSTR, TSRTR) is generated, beside the balance set."""
        return any(PROTOCOLS[p].uses_pool for p in self.protocols)


_METHODS: dict[str, Method] = {}


def register_method(entry: Method, *, replace: bool = False) -> Method:
    """Add ``entry`` to the method registry (``replace=True`` to redefine a name).

    A built-in method registered again without a colour keeps its declared one. Any other method
    registered without a colour gets the first colour of :data:`PALETTE` that no built-in claims
    (whether or not the built-in is registered now) and no registered method uses, so what a
    user registers, and when, never takes a built-in's colour or changes it. A colour passed
    explicitly must not be one another method claims (a one-line :class:`ParameterError`).
    """
    if entry.name in _METHODS and not replace:
        raise ParameterError(f"a method named {entry.name!r} is already registered; pass replace=True")
    taken = {m.color: m.name for m in _METHODS.values() if m.name != entry.name}
    taken.update({c: name for name, c in BUILTIN_COLORS.items() if name != entry.name})
    if entry.color is None:
        entry = _replace(entry, color=BUILTIN_COLORS.get(entry.name) or _free_color(entry.name, taken))
    elif entry.color.lower() in {c.lower() for c in taken}:
        owner = next(name for c, name in taken.items() if c.lower() == entry.color.lower())
        raise ParameterError(f"method {entry.name!r}: colour {entry.color} is {owner!r}'s; pass another colour "
                             "or none (a free one is chosen)")
    _METHODS[entry.name] = entry
    return entry


def _free_color(name: str, taken) -> str:
    """The first colour of :data:`PALETTE` not in ``taken``; past its end, one derived from ``name``."""
    taken = {c.lower() for c in taken}
    for c in PALETTE:
        if c.lower() not in taken:
            return c
    digest = hashlib.sha256(name.encode()).digest()
    while True:  # deterministic by name; a collision re-hashes
        c = "#" + digest[:3].hex()
        if c not in taken:
            return c
        digest = hashlib.sha256(digest).digest()


def unregister_method(name: str) -> None:
    """Remove a method (for tests and notebooks that register a toy one)."""
    _METHODS.pop(name, None)


def method(name: str) -> Method:
    """The registered :class:`Method` called ``name`` (a one-line error listing the choices)."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ParameterError(f"method must be one of {', '.join(_METHODS)}; got {name!r}") from None


ROLE_ORDER: tuple[str, ...] = ("reference", "control", "baseline", "tardiff")


def methods(role: Role | None = None) -> list[Method]:
    """Registered methods in reading order: by role (reference, controls, baselines, TarDiff), then
    registration order, so a baseline registered later still reads before TarDiff. Optionally of one role."""
    ordered = sorted(_METHODS.values(), key=lambda m: ROLE_ORDER.index(m.role))  # stable: keeps registration order
    return [m for m in ordered if role is None or m.role == role]


def method_names(role: Role | None = None) -> tuple[str, ...]:
    """Names of :func:`methods`."""
    return tuple(m.name for m in methods(role))


def guided_method(guidance: Literal["config", "calibrated"], among=None) -> str | None:
    """The first registered method (of ``among``, when given) built with ``guidance`` options: the
    run's own ("config": TarDiff) or the calibrated ones ("calibrated"); None when there is none.

    Examples
    --------
    >>> guided_method("config"), guided_method("calibrated", among=("real", "smote"))
    ('tardiff', None)
    """
    names = [m.name for m in methods() if m.guidance == guidance and (among is None or m.name in among)]
    return names[0] if names else None


def label(name: str) -> str:
    """The label of method ``name`` (the name itself when it is not registered)."""
    return _METHODS[name].label if name in _METHODS else name


def color(name: str) -> str:
    """The colour of method ``name`` (grey when it is not registered)."""
    return _METHODS[name].color if name in _METHODS else GREY


def order(name: str) -> int:
    """Sort key of method ``name``: its position in :func:`methods` (unknown names last)."""
    names = method_names()
    return names.index(name) if name in names else len(names)


def _replace(entry: Method, **changes) -> Method:
    from dataclasses import replace

    return replace(entry, **changes)


# --------------------------------------------------------------------------- the comparisons, fixed in advance
#: The ratio of synthetic to real rows at which TSRTR enters the family (as many synthetic rows as
#: real ones; the other ratios are shown, never tested).
FAMILY_TSRTR_ALPHA = 1.0


def comparison_family(methods_run, evaluator: str, alphas=(FAMILY_TSRTR_ALPHA,)) -> list[dict]:
    """The comparisons a run tests, declared before any result; one Holm family per dataset.

    1. each TarDiff variant against the unguided model, under each protocol both have;
    2. each generator (a method that creates rows) against real data alone (its TRTR), under
       each of the generator's protocols;
    3. each TarDiff variant against each other baseline, under each protocol both have.

    Only the main ``evaluator`` is tested, and TSRTR only at :data:`FAMILY_TSRTR_ALPHA` (the
    largest ratio run when that one is not). Which stays, seeds and settings make the numbers
    is decided inside each replicate on its own validation and selection stays; nothing here
    depends on a result.

    Examples
    --------
    >>> [(c["method"], c["baseline"], c["protocol"]) for c in comparison_family(["real", "smote", "unguided",
    ...  "tardiff"], "gbm")][:3]
    [('tardiff', 'unguided', 'tstr'), ('tardiff', 'unguided', 'tsrtr'), ('tardiff', 'unguided', 'rebalance')]
    """
    present = [m for m in method_names() if m in set(methods_run)]
    alpha = FAMILY_TSRTR_ALPHA if FAMILY_TSRTR_ALPHA in tuple(alphas) else max(alphas)

    def settings(name):
        return [(p, alpha if p == "tsrtr" else None) for p in method(name).protocols]

    def member(kind, m, b, setting, baseline_setting):
        return {"kind": kind, "method": m, "baseline": b, "protocol": setting[0], "alpha": setting[1],
                "baseline_protocol": baseline_setting[0], "baseline_alpha": baseline_setting[1],
                "evaluator": evaluator}

    tardiffs = [m for m in present if method(m).role == "tardiff"]
    unguided = [m for m in present if m == "unguided"]
    family = [member("tardiff_vs_unguided", t, u, s, s) for t in tardiffs for u in unguided
              for s in settings(t) if s in settings(u)]
    family += [member("vs_real", g, ref, s, ("trtr", None)) for ref in present if method(ref).role == "reference"
               for g in present if method(g).synthetic for s in settings(g)]
    family += [member("tardiff_vs_baseline", t, b, s, s) for t in tardiffs for b in present
               if method(b).role == "baseline" and b not in unguided for s in settings(t) if s in settings(b)]
    return family


# --------------------------------------------------------------------------- protocols
@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: which training set the evaluators get.

    ``needs_generator``: it uses synthetic rows; ``uses_pool``: those rows come from the
    training-size pool (TSTR, TSRTR) rather than the minority balance set.
    """

    name: str
    label: str
    description: str
    needs_generator: bool
    uses_pool: bool = False


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("trtr", "TRTR", "train on real, test on real (the reference)", needs_generator=False),
    Protocol("tstr", "TSTR", "train on synthetic rows only (training size, real class ratio)",
             needs_generator=True, uses_pool=True),
    Protocol("tsrtr", "TSRTR", "real rows plus alpha times as many synthetic rows",
             needs_generator=True, uses_pool=True),
    Protocol("rebalance", "rebalance 1:1", "real rows plus synthetic minority rows up to the majority count",
             needs_generator=True),
)}


def protocol(name: str) -> Protocol:
    """The :class:`Protocol` called ``name``."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ParameterError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {name!r}") from None


def protocol_label(name: str, alpha: float | None = None) -> str:
    """``"TSRTR +100%"`` for TSRTR at ``alpha``, else the protocol's label.

    Examples
    --------
    >>> protocol_label("tsrtr", 0.5), protocol_label("trtr")
    ('TSRTR +50%', 'TRTR')
    """
    base = PROTOCOLS[name].label if name in PROTOCOLS else str(name)
    if name == "tsrtr" and alpha is not None and np.isfinite(alpha):
        return f"{base} +{alpha:.0%}"
    return base


def protocol_order(name: str) -> int:
    """Sort key of protocol ``name`` (registry order)."""
    names = list(PROTOCOLS)
    return names.index(name) if name in names else len(names)


# --------------------------------------------------------------------------- evaluators
@dataclass(frozen=True)
class Evaluator:
    """A downstream classifier that judges each method's training sets.

    ``factory(scale, *, random_state, device, class_weight)`` returns an unfitted estimator with
    ``fit(X, y, X_val, y_val)`` and ``predict_proba(X)``.
    """

    name: str
    label: str
    factory: Callable[..., Any] = field(repr=False)


_EVALUATORS: dict[str, Evaluator] = {}


def register_evaluator(entry: Evaluator, *, replace: bool = False) -> Evaluator:
    """Add ``entry`` to the evaluator registry."""
    if entry.name in _EVALUATORS and not replace:
        raise ParameterError(f"an evaluator named {entry.name!r} is already registered; pass replace=True")
    _EVALUATORS[entry.name] = entry
    return entry


def evaluator(name: str) -> Evaluator:
    """The registered :class:`Evaluator` called ``name``."""
    try:
        return _EVALUATORS[name]
    except KeyError:
        raise ParameterError(f"evaluator must be one of {', '.join(_EVALUATORS)}; got {name!r}") from None


def evaluator_names() -> tuple[str, ...]:
    """Names of the registered evaluators."""
    return tuple(_EVALUATORS)


# --------------------------------------------------------------------------- the built-in entries
def _smote(ctx: MethodContext):
    from tardiff.samplers import SMOTESampler

    return SMOTESampler(random_state=ctx.seed)


def _random_oversampling(ctx: MethodContext):
    from tardiff.samplers import RandomOverSampler

    return RandomOverSampler(random_state=ctx.seed)


def _mcrage(ctx: MethodContext):
    from tardiff.samplers import MCRAGESampler

    extra = {} if ctx.tuned is None else {"guidance_weight": ctx.tuned}
    return MCRAGESampler(scale=ctx.scale, device=ctx.device, progress=ctx.progress, random_state=ctx.seed, **extra)


def _unguided(ctx: MethodContext):
    from tardiff.samplers import UnguidedDiffusionSampler

    return UnguidedDiffusionSampler(scale=ctx.scale, device=ctx.device, progress=ctx.progress,
                                    random_state=ctx.seed, denoiser=ctx.denoiser())


def _tardiff(ctx: MethodContext):
    from tardiff.samplers import TarDiffSampler

    g = ctx.guidance
    return TarDiffSampler(scale=ctx.scale, device=ctx.device, progress=ctx.progress, random_state=ctx.seed,
                          denoiser=ctx.denoiser(), classifier=ctx.guidance_classifier(),
                          guidance_set=ctx.guidance_set(), **g.sampler_params())


def _classifier_factory(arch: str):
    def build(scale: str, *, random_state: int = 0, device="auto", class_weight: bool = False):
        from tardiff.classifiers import make_classifier

        return make_classifier(arch, scale, random_state=random_state, device=device, class_weight=class_weight)

    return build


_GENERATORS = ("tstr", "tsrtr", "rebalance")
_GUIDED = ("denoiser", "guidance_classifier")
#: The built-in methods, each with its fixed colour.
BUILTIN_METHODS: tuple[Method, ...] = (
    Method("real", "real only", "reference", ("trtr",), color="#0173b2"),
    Method("real_cw", "real, class-weighted", "control", ("trtr",), color="#56b4e9", class_weight=True),
    Method("ros", "random oversampling", "control", ("rebalance",), _random_oversampling, color=GREY),
    Method("smote", "SMOTE", "baseline", ("tsrtr", "rebalance"), _smote, color="#029e73", synthetic=True),
    # MCRAGE's guidance weight: its augmentation notebook's 4, its other scripts' 0 and 0.5; chosen
    # per replicate on the selection stays, among the weights whose sets pass the quality gate.
    Method("mcrage", "MCRAGE", "baseline", _GENERATORS, _mcrage, color="#cc78bc", synthetic=True,
           tuned=("guidance_weight", (0.0, 0.5, 4.0), "rebalance")),
    Method("unguided", "unguided diffusion", "baseline", _GENERATORS, _unguided, color="#de8f05",
           synthetic=True, components=("denoiser",)),
    Method("tardiff", "TarDiff", "tardiff", _GENERATORS, _tardiff, color="#d55e00", synthetic=True,
           guidance="config", components=_GUIDED, unguided_twin="unguided"),
    # The same sampler with the guidance the run calibrates (guidance_norm "unit", its scale chosen
    # on validation AUPRC in the guidance sweep, never on test); run beside TarDiff automatically.
    Method("tardiff_cal", "TarDiff (calibrated)", "tardiff", _GENERATORS, _tardiff, color="#a6361c",
           synthetic=True, guidance="calibrated", components=_GUIDED, unguided_twin="unguided"),
)
#: The colour each built-in method claims: never handed to another method, whatever is registered when.
BUILTIN_COLORS: dict[str, str] = {m.name: m.color for m in BUILTIN_METHODS}
for _entry in BUILTIN_METHODS:
    register_method(_entry)

for _entry in (
    Evaluator("cnn", "dilated CNN", _classifier_factory("cnn")),
    Evaluator("gru", "bidirectional GRU", _classifier_factory("gru")),
    Evaluator("transformer", "transformer encoder", _classifier_factory("transformer")),
    Evaluator("gbm", "gradient boosting on summaries", _classifier_factory("gbm")),
):
    register_evaluator(_entry)
