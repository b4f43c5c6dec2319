"""The fit layer's internals: the one loss definition (:mod:`genanalysis.fitting.loss`) and
the network's training on it (:mod:`genanalysis.fitting.network`). The public entry point
is :mod:`genanalysis.fit` (docs/models.md §3); this package imports the models, never the
reverse.
"""
