"""Independent NumPy reading of de Roos et al.'s Alg. 1 (with Eq. 12, 14, Tab. 1).

Written line by line from Alg. 1 on the flat float64 vectors of
``_problems.REF``, with the documented choices of
``adaptlr.scale_by_probabilistic_lr``: Δf clipped at 0, a step with φ ≤ 0 is
not taken and η is kept; with ``safeguard`` (the default) a step whose loss
after it, f₊ (line 15, computed anyway), is not below f is not taken either
(η is lowered by line 19 as in the paper). ``decay_steps`` T (adaptlr's
horizon): the step taken is the step of Alg. 1 times ½(1 + cos(π min(t, T)/T)),
while f₊ is the loss after the undecayed step.
"""

import numpy as np

_EPS64 = float(np.finfo(np.float64).eps)


def probabilistic_reference(
  prob,
  steps,
  learning_rate,
  base="sgd",
  beta=0.5,
  b1=0.9,
  b2=0.999,
  adam_eps=1e-8,
  f_min=None,
  noise_variance=0.0,
  relative_noise=False,
  increase_factor=1.2,
  decrease_factor=0.5,
  increase_threshold=4 / 3,
  decrease_threshold=3 / 4,
  max_scale=None,
  adapt_every=1,
  safeguard=True,
  decay_steps=None,
  rounding_eps=_EPS64,
):
  """Alg. 1 step by step. ``base``: "sgd", "momentum" (m = βm + g) or "adam".

  adaptlr's one addition: an expected decrease φ/2 at most 16 ulps of f (``rounding_eps``:
  the machine epsilon of the dtype under test) is not measurable, and η grows."""
  eta = float(learning_rate)
  w = prob.w0.copy()
  m = np.zeros_like(w)
  v = np.zeros_like(w)
  traj, rates = [], []
  for t in range(steps):
    s = prob.shift(t)
    f = prob.loss(w, s)  # line 3
    g = prob.grad(w, s)  # line 4
    if base == "sgd":
      wg = g
    elif base == "momentum":  # Tab. 1 / §2.3, PyTorch form
      m = beta * m + g
      wg = m
    elif base == "adam":  # Tab. 1, optax.scale_by_adam
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g * g
      mhat = m / (1 - b1 ** (t + 1))
      vhat = v / (1 - b2 ** (t + 1))
      wg = mhat / (np.sqrt(vhat) + adam_eps)
    else:
      raise ValueError(base)
    vv = eta * wg  # line 5
    phi = float(g @ vv)  # line 6
    r = noise_variance * abs(f) if relative_noise else noise_variance
    gap = (f - f_min) if f_min is not None else phi / 2  # lines 8–12
    gap = max(gap, 0.0)
    if phi > 0:
      scale = 2 * gap / (phi + r)  # line 13
      if max_scale is not None:
        scale = min(scale, max_scale)
    else:
      scale = 0.0  # φ ≤ 0: no step
    w_full = w - vv * scale  # line 13
    decay = (
      1.0 if decay_steps is None else 0.5 * (1 + np.cos(np.pi * min(t, decay_steps) / decay_steps))
    )
    w_new = w - decay * vv * scale
    if phi > 0 and t % adapt_every == 0:
      f_plus = prob.loss(w_full, s)  # line 15
      ratio = (f - f_plus) / (phi / 2)
      if ratio > increase_threshold or phi / 2 <= 16 * rounding_eps * abs(f):  # lines 16–19
        eta = eta * increase_factor
      elif ratio < decrease_threshold:
        eta = eta * decrease_factor
      if safeguard and f_min is None and not f_plus <= f:  # the step raised the loss
        w_new = w
    w = w_new
    traj.append(w.copy())
    rates.append(np.array([eta]))
  return np.array(traj), np.array(rates)
