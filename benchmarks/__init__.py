"""adaptlr's benchmarks: a framework that runs profiles, and one-off studies.

Framework (``python -m benchmarks run --profile quick|full``):

* ``data``: offline loaders of the data sets;
* ``problems``: the problems (loss, data, budget, rate grid) and the profiles;
* ``methods``: optax baselines and peers, and adaptlr's methods read from
  ``adaptlr.registry.METHODS``;
* ``harness``: one compiled, ``vmap``-over-rates-and-seeds run per (problem,
  method), tuning freedom and per-rate metrics;
* ``runner``, ``report``, ``reproductions``: a profile's run, its report and
  the reproductions of published numbers inside it.

Studies (``python -m benchmarks.studies.<name>``): ``benchmarks/studies/``, one
module per question, all writing through :mod:`benchmarks.io`; models shared by
several studies (the sharded transformer) live in ``benchmarks/models/``. What every
results file answers: ``benchmarks/results/README.md``.
"""
