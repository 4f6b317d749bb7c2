"""Independent NumPy readings of TLR (Alg. 2, Eq. 7–10) and the hypergradient rules."""

import numpy as np


def _group_sum(x, ids):
  return np.bincount(ids, weights=x, minlength=ids.max() + 1)


def tlr_reference(
  prob,
  steps,
  learning_rate,
  bound=0.25,
  max_bound=None,
  granularity="global",
  accumulation_steps=1,
  safeguard=True,
  momentum=None,
  nesterov=False,
  inner_products="gradient",
):
  """Alg. 2 with the Eq. 10 windows, written out scalar by scalar.

  ``momentum``: the direction is optax.trace(momentum) (m_t = g_t + μ m_{t−1};
  the step u_t = m_t, or g_t + μ m_t with ``nesterov``). ``inner_products``:
  "displacement" puts G_t = (w_{t−K} − w_t)/α = Σ u (Sec. 4 Eq. 10, App. D) in
  both slots of Eq. 9; "gradient" puts the gradient sum in the first slot.
  ``max_bound``: adaptlr's cold start — c doubles after each update that c
  capped, up to ``max_bound``, and returns to ``bound`` otherwise (None: the
  paper's fixed c).
  """
  ids = prob.group_ids(granularity)
  n = ids.max() + 1
  alpha = np.full(n, float(learning_rate))
  ceiling = np.full(n, np.inf)
  c = np.full(n, float(bound))  # this update's c per group
  top = float(bound) if max_bound is None else float(max_bound)
  w = prob.w0.copy()
  k = accumulation_steps
  G = np.zeros_like(w)
  U = np.zeros_like(w)  # window sums
  U_prev = None
  prev_gu = None
  trace = np.zeros_like(w)
  traj, rates = [], []
  for t in range(steps):
    g = prob.grad(w, prob.shift(t))
    if momentum is None:
      u = g
    else:
      trace = g + momentum * trace
      u = g + momentum * trace if nesterov else trace
    G += g
    U += u
    if (t + 1) % k == 0:
      # G_t of Eq. 10 with momentum: each step moves w by α u, so the window's
      # displacement over the rate is U = Σ u (its last step is taken below).
      first = U if inner_products == "displacement" else G
      gu = _group_sum(first * U, ids)  # ‖g_t‖² (⟨G_t, u_t⟩ with a direction)
      if U_prev is not None:
        ip = _group_sum(first * U_prev, ids)  # ⟨g_t, g_{t−1}⟩ (Eq. 7)
        for j in range(n):
          gu_j = max(gu[j], 0.0)  # a direction may point uphill
          den = max(4 * (gu_j - ip[j]), ip[j] / c[j])  # Eq. 9
          ratio = ip[j] / den if den > 0 else 0.0
          new = alpha[j] * (1 + ratio)
          capped = ip[j] > 0 and ip[j] / c[j] > 4 * (gu_j - ip[j])
          c[j] = min(2 * c[j], top) if capped else bound
          ratio_k = ip[j] / prev_gu[j] if prev_gu[j] > 0 else 0.0
          # divergence: −ip/prev_gu > 1, or (even windows) ip/prev_gu > 2
          if safeguard and prev_gu[j] > 0 and (-ratio_k > 1 or (k % 2 == 0 and ratio_k > 2)):
            r = abs(ratio_k) ** (1.0 / k)
            braked = alpha[j] / (1 + r)
            new = min(new, braked)
            c[j] = bound
            if k > 1:
              ceiling[j] = min(ceiling[j], 1.5 * braked)
          if safeguard and k > 1:
            new = min(new, ceiling[j])
          alpha[j] = new
      U_prev, prev_gu = U.copy(), gu
      G = np.zeros_like(w)
      U = np.zeros_like(w)
    w = w - alpha[ids] * u  # Alg. 2, line 6
    traj.append(w.copy())
    rates.append(alpha.copy())
  return np.array(traj), np.array(rates)


def hypergradient_reference(
  prob,
  steps,
  learning_rate,
  hyper_lr=1e-3,
  multiplicative=False,
  lookahead=False,
  granularity="global",
  min_learning_rate=0.0,
):
  """Baydin et al. / Ravaut & Gorti Eq. 3–4 / TLR Alg. 1, scalar by scalar."""
  ids = prob.group_ids(granularity)
  n = ids.max() + 1
  eta = np.full(n, float(learning_rate))
  w = prob.w0.copy()
  u_prev = np.zeros_like(w)
  traj, rates = [], []
  for t in range(steps):
    s = prob.shift(t)
    g = prob.grad(w, s)
    if lookahead:
      # −∂L(w − α u)/∂α_j at α = η: ⟨∇L(w − η u), u⟩ over group j (TLR Eq. 5).
      h = _group_sum(prob.grad(w - eta[ids] * g, s) * g, ids)
      eta = eta + hyper_lr * h
    elif multiplicative:
      h = _group_sum(g * u_prev, ids)
      nrm = np.sqrt(_group_sum(g * g, ids) * _group_sum(u_prev * u_prev, ids))
      eta = eta * (1 + hyper_lr * np.where(nrm > 0, h / np.where(nrm > 0, nrm, 1), 0))
    else:
      eta = eta + hyper_lr * _group_sum(g * u_prev, ids)
    eta = np.maximum(eta, min_learning_rate)
    w = w - eta[ids] * g
    u_prev = g
    traj.append(w.copy())
    rates.append(eta.copy())
  return np.array(traj), np.array(rates)
