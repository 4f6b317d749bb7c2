"""One-off studies behind adaptlr's defaults and claims, each writing ``results/<name>.*``.

Run one with ``python -m benchmarks.studies.<name>``; what each result answers,
and the command that regenerates it, is indexed in ``benchmarks/results/README.md``.

* ``newton_defaults``: newton_lr's derivatives, finite-difference ε and max_change.
* ``overhead``: per-step cost of every method relative to ``optax.sgd``.
* ``tlr_safeguard``: TLR's paper rule against its safeguarded default.
* ``vsgd_curvature``: vSGD's curvature estimators against |diag H| on MNIST.
* ``vsgd_mnist``: vSGD, SGD, AdaGrad, SMD and Almeida on MNIST (vSGD Tables 2–3).

They share the framework (``benchmarks.problems``, ``benchmarks.harness``,
``benchmarks.methods``) and the output writer :mod:`benchmarks.io`.
"""
