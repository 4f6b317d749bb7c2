"""Independent NumPy reading of Ravaut & Gorti's Newton rule (Eq. 10–13, §4.1, §5.2).

Written scalar by scalar from the paper and the docstring of
``adaptlr.scale_by_newton_lr``, on the flat float64 vectors of
``_problems.REF``: the line of group j is F(r) = L(w − r[ids] u), its exact
derivatives are ∂_j F = −Σ_{i∈j} ∇L_i u_i and ∂²_jj F = Σ_{i∈j} ∇²L_ii u_i²
(the reference loss is separable), and its five probes are F at
r + k ε_j e_j.
"""

import numpy as np

ROUNDING = 16  # ulps of the loss below which a difference is rounding noise


def _group_sum(x, ids):
  return np.bincount(ids, weights=x, minlength=ids.max() + 1)


def newton_rule(
  eta,
  vel,
  num,
  den,
  tol_num,
  tol_den,
  *,
  max_change,
  rate_momentum,
  delta,
  min_learning_rate=0.0,
  max_learning_rate=np.inf,
):
  """(η_{k+1}, δ_{k+1}, the line's own rate) for one group."""
  clamp = lambda r: min(max(max(r, delta), min_learning_rate), max_learning_rate)
  if max_change is None:
    if den == 0:  # Eq. 11–12: "when it reaches zero
      den = den + delta  # machine, but only when it does so" (§4.1)
    step = -num / den  # Eq. 10
  else:
    c = max_change
    if den > tol_den:  # convex: Newton
      step = -num / den
    elif abs(num) > tol_num:  # concave or flat: downhill by 1 + c
      step = c * eta if num < 0 else eta / (1 + c) - eta
    else:
      step = 0.0
  line = clamp(eta + step)
  new = eta + rate_momentum * vel + step  # §5.2
  if max_change is not None:
    new = min(max(new, eta / (1 + max_change)), eta * (1 + max_change))
  new = clamp(new)  # Eq. 13
  return new, new - eta, line


def newton_reference(
  prob,
  steps,
  learning_rate,
  derivatives="autodiff",
  line="next_batch",
  eps=None,
  relative_eps=0.25,
  max_change=1.0,
  safeguard=True,
  rate_momentum=0.0,
  delta=1e-6,
  granularity="global",
  trace=None,
):
  """Newton on η, step by step; ``trace``: direction optax.trace(trace) (u = g + β u).

  ``line="next_batch"``: the line fitted at step k is the last step's,
  F(r) = L(w_{k−1} − r u_{k−1}) on batch k, at r = η_{k−1}; its rate is step k's;
  with ``safeguard`` a step that raises batch k's loss beyond rounding is not taken (no line
  for the next step) and the rate is divided by 1 + c.
  """
  ids = prob.group_ids(granularity)
  n = ids.max() + 1
  eta = np.full(n, float(learning_rate))
  vel = np.zeros(n)
  w = prob.w0.copy()
  u_prev = np.zeros_like(w)
  u_line = np.zeros_like(w)  # the last step's direction (line="next_batch")
  traj, rates = [], []
  for t in range(steps):
    s = prob.shift(t)
    g = prob.grad(w, s)
    u = g if trace is None else g + trace * u_prev
    u_prev = u
    if line == "next_batch":
      base, d = w + eta[ids] * u_line, u_line  # w_{k−1}, u_{k−1}
    else:
      base, d = w, u
    num = np.zeros(n)
    den = np.zeros(n)
    tol_num = np.zeros(n)
    tol_den = np.zeros(n)
    if derivatives == "autodiff":
      p = base - eta[ids] * d
      num = -_group_sum(prob.grad(p, s) * d, ids)  # f′ per group
      den = _group_sum(prob.hess_diag(p, s) * d * d, ids)  # f″ per group
    else:
      for j in range(n):
        e = eps if eps is not None else relative_eps * eta[j]
        vals = []
        for k in (-2, -1, 0, 1, 2):  # Eq. 6–9
          r = eta.copy()
          r[j] += k * e
          vals.append(prob.loss(base - r[ids] * d, s))
        fm2, fm1, f0, fp1, fp2 = vals
        num[j] = 2 * e * (fp1 - fm1)  # Eq. 10
        den[j] = fp2 + fm2 - 2 * f0
        tol_den[j] = ROUNDING * np.finfo(np.float64).eps * max(abs(v) for v in vals)
        tol_num[j] = 2 * e * tol_den[j]
    new = np.zeros(n)
    line_rate = np.zeros(n)
    for j in range(n):
      new[j], vel[j], line_rate[j] = newton_rule(
        eta[j],
        vel[j],
        num[j],
        den[j],
        tol_num[j],
        tol_den[j],
        max_change=max_change,
        rate_momentum=rate_momentum,
        delta=delta,
      )
    taken = True
    if line == "next_batch":
      step_rate = new
      f_0 = prob.loss(w, s)
      rounding = ROUNDING * np.finfo(np.float64).eps * abs(f_0)
      if safeguard and prob.loss(w - step_rate[ids] * u, s) > f_0 + rounding:
        taken = False  # uphill on this batch beyond rounding: no step, η ÷ (1 + c)
        new = new / (2.0 if max_change is None else 1 + max_change)
    else:
      step_rate = np.minimum(eta, line_rate) if safeguard else eta  # §4.1 order
    if taken:
      w = w - step_rate[ids] * u
    u_line = u if taken else np.zeros_like(u)
    eta = new
    traj.append(w.copy())
    rates.append(eta.copy())
  return np.array(traj), np.array(rates)
