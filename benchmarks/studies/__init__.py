"""One-off studies behind adaptlr's defaults and claims, each writing ``results/<name>.*``.

Run one with ``python -m benchmarks.studies.<name>``; what each result answers,
and the command that regenerates it, is indexed in ``benchmarks/results/README.md``.

* ``horizon``: issue 12's design study of ``probabilistic_lr``'s horizon (``decay_steps``).
* ``network_defaults``: issue 12's design study of the ``tlr``, ``hypergradient`` and
  ``vsgd`` network defaults (both share ``_design``'s command line).
* ``newton_networks``: the design study of ``newton_lr``'s network default (``line``).
* ``network_rates``: where the learned rates go on the networks (trains nothing).
* ``newton_defaults``: newton_lr's derivatives, finite-difference ε and max_change.
* ``overhead``: per-step cost of every method relative to ``optax.sgd``.
* ``tlr_momentum``: TLR with momentum: the paper's displacement form against the gradient form.
* ``tlr_safeguard``: TLR's paper rule against its safeguarded default.
* ``vsgd_cost``: vSGD's curvature refresh (``curvature_every``), estimator and fused
  rule: loss reached, passes over the params, per-step cost.
* ``vsgd_curvature``: vSGD's curvature estimators against |diag H| on MNIST.
* ``vsgd_mnist``: vSGD, SGD, AdaGrad, SMD and Almeida on MNIST (vSGD Tables 2–3); with
  ``--out benchmarks/results/vsgd_memory`` and the ``τ₀=…`` variants, vSGD's memory after
  the slow start and vSGD-fd's rate.

They share the framework (``benchmarks.problems``, ``benchmarks.harness``,
``benchmarks.methods``) and the output writer :mod:`benchmarks.io`.
"""
