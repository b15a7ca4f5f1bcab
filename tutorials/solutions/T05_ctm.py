"""Solutions to T05 (consistency trajectory models).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in ``T05_ctm.ipynb``;
the lines above the first section only make this file importable on its own.
"""

# %% ex-ctm-jump
def my_ctm_jump(x_t, g, t, s):
    """One Euler step from t to s with g for D: x_t + (x_t - g) / t · (s - t) = (s/t) x_t + (1 - s/t) g."""
    return (s / t) * x_t + (1.0 - s / t) * g

# %% ex-gamma-step
def my_gamma_step(G, x, t, t_next, gamma, eps, z):
    """One gamma-sampling step: jump to s, then re-noise up to t_next. The jump leaves noise of level s;
    independent noises add in variance, so the fresh noise has variance t_next² - s²."""
    if t_next == 0:
        return G(x, t, eps)
    s = (1.0 - gamma**2) ** 0.5 * (t_next - eps) + eps
    return G(x, t, s) + (t_next**2 - s**2) ** 0.5 * z

# %% ex-choose
def choose_sigma_mid(sweep, one_step_err):
    """The smallest median gap among the settings whose median teacher error is at most 0.8 x the
    1-step jump's; if none qualifies, the setting with the smallest median teacher error."""
    gap = {k: float(v["gap"].median()) for k, v in sweep.items()}
    err = {k: float(v["err"].median()) for k, v in sweep.items()}
    qualifying = [k for k in sweep if err[k] <= 0.8 * float(one_step_err.median())]
    if not qualifying:
        return min(sweep, key=err.get)
    return min(qualifying, key=gap.get)
