"""Independent NumPy readings of vSGD (Alg. 1, Eq. 7–8, §4, App. B), SMD (App. C) and
Almeida (§2) of Schaul, Zhang & LeCun 2013, written out scalar by scalar on flat vectors.
"""

import numpy as np


def _group_sum(x, ids):
  return np.bincount(ids, weights=x, minlength=ids.max() + 1)


def _group_max(x, ids):
  return np.array([x[ids == j].max() for j in range(ids.max() + 1)])


def vsgd_reference(
  prob,
  steps,
  learning_rate=1.0,
  granularity="element",
  curvature="hutchinson",
  init_samples=10,
  slow_start=2.0,
  start_memory="init_samples",
  curvature_variance=False,
  min_curvature=1e-6,
  grad_sq=None,
  batch_size=None,
  curvature_every=None,
):
  """Alg. 1 for vSGD-l (and its -b / -g analogues, §5 + App. B).

  ``curvature="hutchinson"`` is the exact |diag H| (the reference problem is
  separable, so Hutchinson's z ⊙ Hz is exact); ``"finite_difference"`` is
  |∇(θ + δ) − ∇θ| / δ with δ = ḡ (Schaul & LeCun 2013). ``grad_sq(w, shift)``:
  per-sample second moments for the minibatch-corrected variant (with
  ``batch_size``). ``start_memory``: τ after the slow start — "init_samples"
  (n₀), a number (py-optim ``vSGD``: 2) or "adapted" (vsgd-bb.m: the forgetting
  factor starts at 0, i.e. τ = 1, and is updated once before the first step,
  α = (1 − vpart)/(2 − vpart − 0), τ = 1/(1 − α) = 2 − vpart₀).
  ``curvature_variance``: py-optim ``vSGDfd``'s rate vpart · h̄ / v̄_h with v̄_h
  the running mean of h² (per group: the smallest h̄ / v̄_h).

  ``curvature_every`` k (default 1): the
  curvature is sampled on every slow-start step and then on steps n₀, n₀ + k,
  n₀ + 2k, …; a sample after the slow start enters h̄ (and v̄_h) with weight 1/τ
  (k = 1) or min(½, 1 − (1 − 1/τ)^k) (k > 1); between samples they are kept.
  """
  k = curvature_every or 1
  ids = prob.group_ids(granularity)
  ng = ids.max() + 1
  n0 = init_samples
  C = max(1.0, prob.w0.size / 10) if slow_start == "d/10" else slow_start
  w = prob.w0.copy()
  gbar = np.zeros_like(w)
  hbar = np.zeros_like(w)
  vhbar = np.zeros_like(w)  # v̄_h (curvature_variance)
  sq_avg = np.zeros(ng)  # v̄ (element) or l̄ per block
  tau = np.full(ng, float(n0))
  traj, rates = [], []
  for t in range(steps):
    s = prob.shift(t)
    g = prob.grad(w, s)
    warm = t < n0
    refresh = warm or (t - n0) % k == 0
    if not refresh:
      h = hbar
    elif curvature == "hutchinson":
      h = np.abs(prob.hess_diag(w, s))
    else:  # finite difference, same sample
      delta = g if t == 0 else gbar
      step = (w + delta) - w
      h = np.where(
        step != 0, np.abs(prob.grad(w + delta, s) - g) / np.where(step != 0, np.abs(step), 1), hbar
      )
    if grad_sq is None:
      sq = _group_sum(g * g, ids)
    else:
      sq = _group_sum(grad_sq(w, s), ids)
    frac = np.full(ng, 1.0 / (t + 1)) if warm else 1.0 / tau
    fe = frac[ids]
    gbar = (1 - fe) * gbar + fe * g  # §4.1
    if refresh:  # §4.3, sampled every k steps
      fh = fe if (warm or k == 1) else np.minimum(0.5, 1 - (1 - 1 / tau) ** k)[ids]
      hbar = (1 - fh) * hbar + fh * h
      vhbar = (1 - fh) * vhbar + fh * h * h  # vSGDfd: v̄_h
    sq_avg = (1 - frac) * sq_avg + frac * sq
    if t == n0 - 1:
      sq_avg = C * sq_avg  # slow start, §4.4
    num = _group_sum(gbar * gbar, ids)
    n = batch_size
    den = sq_avg if n is None else sq_avg / n + (n - 1) / n * num
    vpart = np.clip(np.where(den > 0, num / np.where(den > 0, den, 1), 0.0), 0, 1)
    if curvature_variance:  # vSGDfd: vpart · h̄ / v̄_h
      hpart = np.array(
        [
          min(
            min(hbar[i] / vhbar[i], 1 / hbar[i]) if hbar[i] > 0 else np.inf
            for i in np.flatnonzero(ids == j)
          )
          for j in range(ng)
        ]
      )
      hplus = np.maximum(1 / hpart, min_curvature)
    else:
      hplus = np.maximum(_group_max(hbar, ids), min_curvature)
    eta = learning_rate * vpart / hplus  # Eq. 7 / Eq. 8
    if warm:
      eta = np.zeros(ng)
    else:
      tau = (1 - vpart) * tau + 1  # §4.2, App. B
    if t == n0 - 1:  # the memory after the slow start
      if start_memory == "init_samples":
        tau = np.full(ng, float(n0))
      elif start_memory == "adapted":
        alpha = (1 - vpart) / (2 - vpart - 0.0)  # vsgd-bb.m, from alpha = 0
        tau = 1 / (1 - alpha)
      else:
        tau = np.full(ng, float(start_memory))
    w = w - eta[ids] * g
    traj.append(w.copy())
    rates.append(eta.copy())
  return np.array(traj), np.array(rates)


def smd_reference(prob, steps, learning_rate=0.01, meta_lr=1e-3, tau=100.0, granularity="global"):
  """App. C; the reference problem's Hessian is diagonal, so Hv = diag(H) ⊙ v."""
  ids = prob.group_ids(granularity)
  eta = np.full(ids.max() + 1, float(learning_rate))
  w = prob.w0.copy()
  v = np.zeros_like(w)
  keep = 1 - 1 / tau
  traj, rates = [], []
  for t in range(steps):
    s = prob.shift(t)
    g = prob.grad(w, s)
    hv = prob.hess_diag(w, s) * v
    w_next = w - eta[ids] * g
    eta_next = eta * np.exp(-meta_lr * _group_sum(g * v, ids))
    v = keep * v - eta[ids] * (g + keep * hv)
    w, eta = w_next, eta_next
    traj.append(w.copy())
    rates.append(eta.copy())
  return np.array(traj), np.array(rates)


def almeida_reference(prob, steps, learning_rate=1e-3, tau=1000.0):
  """§2: η_i = max(0, η₀ ∇_i(t) ∇_i(t−1) / v_i); v the running mean of ∇²."""
  w = prob.w0.copy()
  v = np.zeros_like(w)
  prev = None
  traj, rates = [], []
  for t in range(steps):
    g = prob.grad(w, prob.shift(t))
    frac = max(1 / tau, 1 / (t + 1))
    v = (1 - frac) * v + frac * g * g
    if prev is None:
      prev = g
    eta = np.maximum(0.0, learning_rate * g * prev / v)
    w = w - eta * g
    prev = g
    traj.append(w.copy())
    rates.append(eta.copy())
  return np.array(traj), np.array(rates)
