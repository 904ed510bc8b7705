"""One version per kind of cached artifact, so that a change recomputes what it changed and nothing else.

Every artifact of a run is keyed by what it is computed from (the replicate's data, the
settings, the seed) and by the version of its kind below. Bump a version when that kind's
computation changes meaning:

* ``DATA``: the prepared replicate (splits, imputation, scaling). It is part of the data key,
  so its bump recomputes everything.
* ``DENOISER``, ``GUIDANCE_CLASSIFIER``, ``SYNTHETIC`` (synthetic sets and sweep pools),
  ``GATES`` (the quality gate and its real-vs-real baseline): a bump recomputes that kind.
  Synthetic sets hold no version of the models they come from: a model's bump reaches them
  through the model checkpoint's own key only when its sampler asks for the model again, so
  bump ``SYNTHETIC`` too when a model's change must redraw its sets.
* ``RECORD``: an evaluation record's schema. A bump refits the evaluators and retrains no
  generator. A new metric needs no bump: records keep their test predictions, and a metric
  registered later (:func:`tardiff.evaluation.utility.register_metric`) is filled in from them.
"""

#: 5: replicates (guidance and selection parts in every split), MCRAGE as published, the held-out gate.
DATA = 5
DENOISER = 1
GUIDANCE_CLASSIFIER = 1
SYNTHETIC = 1
GATES = 1
RECORD = 1
