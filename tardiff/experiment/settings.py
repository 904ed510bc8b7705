"""Each run setting declared once, on its :class:`~tardiff.experiment.ExperimentConfig` field.

A field's :func:`~tardiff.experiment.config.setting` metadata says how the setting is offered
and recorded: its help text, its command-line flag (or none), whether the experiment notebook's
parameters cell holds it, whether it changes results (those that do not: which folders,
progress bars), whether the command that repeats a run gives it, and whether that command
spells it out even at its default (those whose default depends on the scale or the version).
From that one declaration:

* ``tardiff run``'s options (:func:`add_run_options`, :func:`values_from_args`);
* the notebook's parameters (:func:`notebook_parameters`; a test fails when the parameters cell
  and the declaration disagree);
* the command that repeats a stored run (:func:`command_line`);
* how a value is read (:meth:`ExperimentConfig.from_parameters`, by the declared kind) and which
  cache keys hold it (:meth:`ExperimentConfig.key_values`, by the declared route).

Adding a setting is then the field (with its ``setting(...)``), the notebook's parameters cell
when the notebook offers it, and the code that uses it: three files (tests/test_settings.py adds
one end to end).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex

from tardiff.errors import ParameterError
from tardiff.experiment.config import PYTHON_TYPES, SAME, Setting, declared


def parameter_default(f: dataclasses.Field, meta: Setting):
    """The default a command line or notebook gives the setting (None: the config's own default)."""
    return f.default if meta.parameter_default == SAME else meta.parameter_default


def _per_scale_text(meta: Setting) -> str:
    from tardiff.presets import EXPERIMENTS, SCALES

    values = (getattr(EXPERIMENTS[s], meta.per_scale) for s in SCALES)
    return "; ".join(f"{scale} {','.join(map(str, v)) or 'none'}" for scale, v in zip(SCALES, values))


def add_run_options(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                    config_class=None) -> None:
    """Add the command-line option of every declared setting (of ``only``, when given) to ``parser``.

    ``config_class`` (default :class:`~tardiff.experiment.ExperimentConfig`) holds the declarations.
    """
    for f, meta, flag in declared(config_class):
        if (only is not None and f.name not in only) or (flag is None and not meta.positional):
            continue
        help_text = meta.help + (f" (default: {_per_scale_text(meta)})" if meta.per_scale else "")
        kwargs = {"help": help_text.replace("%", "%%")}
        if meta.choices is not None:
            kwargs["choices"] = meta.choices
        if meta.kind in ("int", "float"):
            kwargs["type"] = PYTHON_TYPES[meta.kind]
        if meta.kind == "list":
            kwargs["metavar"] = "A,B,..."
            kwargs["type"] = comma_list(PYTHON_TYPES[meta.item])
        if meta.positional:
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(flag, dest=f.name, default=parameter_default(f, meta), **kwargs)


def comma_list(item):
    """An argparse type: ``"0,1,2"`` -> ``(0, 1, 2)``, ``""`` -> ``()`` (a usage error names a bad item)."""
    def parse(text: str) -> tuple:
        try:
            return tuple(item(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {item.__name__}, got {text!r}")
    return parse


def values_from_args(args: argparse.Namespace, config_class=None) -> dict:
    """The declared settings ``args`` holds, by field name (for ``ExperimentConfig.from_parameters``)."""
    return {f.name: getattr(args, f.name) for f, meta, flag in declared(config_class)
            if (flag is not None or meta.positional) and hasattr(args, f.name)}


def notebook_parameters(namespace: dict, config_class=None) -> dict:
    """The declared notebook settings in ``namespace`` (a notebook's ``globals()``), by name.

    A declared setting the namespace lacks is a one-line error: the parameters cell is behind the declaration.
    """
    missing = [f.name for f, meta, _ in declared(config_class) if meta.notebook and f.name not in namespace]
    if missing:
        raise ParameterError(f"the notebook's parameters cell lacks the run setting(s) {', '.join(missing)}; add "
                             "them with their declared defaults (see tardiff/experiment/config.py)")
    return {f.name: namespace[f.name] for f, meta, _ in declared(config_class) if meta.notebook}


def command_line(config: dict, config_class=None) -> str:
    """The ``tardiff run`` command line that repeats a run, from its ``results.json`` config.

    Every setting that changes results and has a flag is given when it differs from its default,
    and the scale- and version-dependent ones (methods, seeds, evaluators, the sweep) always,
    as resolved, so the command does not depend on a later version's defaults. Settings the
    command line cannot set are appended as a comment when they differ from their defaults.

    Examples
    --------
    >>> command_line({"dataset": "simulated", "scale": "smoke", "methods": ["real", "smote"], "seeds": [0]})
    'tardiff run simulated --scale smoke --methods real,smote --seeds 0'
    """
    join = lambda values: ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)  # noqa: E731
    parts = ["tardiff", "run", str(config["dataset"])]
    extra = []
    for f, meta, flag in declared(config_class):
        if meta.positional or not meta.provenance or f.name not in config:
            continue
        value = config[f.name]
        default = f.default if not isinstance(f.default, list) else tuple(f.default)
        if flag is None:
            if value != default and not (isinstance(value, list) and tuple(value) == default):
                extra.append(f"{f.name}={value!r}")
            continue
        if value is None or (not meta.spell_out and value == default):
            continue
        if isinstance(value, (list, tuple)):
            value = join(value)
        elif isinstance(value, float):
            value = f"{value:g}"
        value = str(value)  # a symbolic data folder is double-quoted, so that the shell still expands it
        parts += [flag, f'"{value}"' if value.startswith("$") else shlex.quote(value) if value else "''"]
    return " ".join(parts) + (f"  # with {', '.join(extra)}" if extra else "")
