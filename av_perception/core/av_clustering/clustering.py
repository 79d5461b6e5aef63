"""One window clustered from its warm start: EM, prune and merge, births, EM again
(:func:`cluster_window`), and the kernels' warm-up."""
from __future__ import annotations

import numpy as np

from .. import wdem
from ..config import MicArrayConfig
from ..geometry import MicGeometry
from .births import _audio_births, _prune_and_merge, _reset_mixing, _visual_births
from .clusters import _Clusters, _State
from .config import AVClusteringConfig
from .events import AVWindowResult, _events, _expand
from .shrink import ShrunkItdModel
from .window import _validate_inputs, _Window


def _run_window(win: _Window, state: _State | None, wcfg: wdem.WdemConfig):
    cl = state.clusters.copy() if state is not None else _Clusters.empty()
    next_label = state.next_label if state is not None else 0
    if cl.K:
        cl = _reset_mixing(cl)
    total_iter = 0
    cl, e, hist, n = win.run(cl)
    total_iter += n
    for _round in range(3):
        cl2, changed = _prune_and_merge(win, cl, e)
        if changed:
            cl, e, hist, n = win.run(cl2)
            total_iter += n
        born = False
        out = _visual_births(win, cl, e, wcfg, next_label)
        if out is not None:
            cl, n_new = out
            next_label += n_new
            born = True
        out = _audio_births(win, cl, e, next_label) if not born else None
        if out is not None:
            cl, n_new = out
            next_label += n_new
            born = True
        if not born:
            if changed:
                continue
            break
        cl, e, hist, n = win.run(cl)
        total_iter += n
    cl, changed = _prune_and_merge(win, cl, e)
    if changed:
        cl, e, hist, n = win.run(cl)
        total_iter += n
    return cl, e, hist, total_iter, next_label


def cluster_window(visual_points, visual_weights, itds, itd_weights, geometry=None,
                   config: AVClusteringConfig | None = None,
                   wdem_config: wdem.WdemConfig | None = None, visual_covariances=None,
                   previous=None, stamp: float = 0.0, use_numba: bool = True,
                   itd_shrink: float = 0.0) -> AVWindowResult:
    """Cluster one window of audio-visual observations.

    Parameters
    ----------
    visual_points : (N_v, 3) m, left camera optical frame; visual_weights : (N_v,) >= 0.
    itds : (N_a,) s (positive when the sound reaches the left mic first); itd_weights :
        (N_a,) >= 0.  Non-finite ITDs are allowed only with weight 0.
    geometry : MicGeometry (default: the default MicArrayConfig).
    config : AVClusteringConfig; wdem_config : WdemConfig (E-step variant, births' K search).
    visual_covariances : optional (N_v, 3, 3) m^2 per-observation covariances (stereo noise).
    previous : ``AVWindowResult.state`` of the previous window (warm start).
    stamp : s, written into the events.
    use_numba : run the window EM with the numba kernel (default) or its numpy reference.
    itd_shrink : 1/m, the reverberation shrink b of the ITD model, (1 - b d) G(S)
        (:mod:`.shrink`; :class:`AVClusterer` estimates it across windows).

    Returns
    -------
    AVWindowResult
    """
    cfg = config or AVClusteringConfig()
    wcfg = wdem_config or wdem.WdemConfig()
    geometry = geometry if geometry is not None else MicGeometry.from_config(MicArrayConfig())
    X, wv, C, tau, wa = _validate_inputs(visual_points, visual_weights, itds, itd_weights,
                                         visual_covariances)
    if previous is not None and not isinstance(previous, _State):
        raise ValueError("previous must be the .state of an AVWindowResult")
    if itd_shrink:
        geometry = ShrunkItdModel(geometry, itd_shrink)
    win = _Window(X, wv, C, tau, wa, geometry, cfg, wcfg.variant, wcfg.reg_covar,
                  bool(use_numba))
    cl, e, hist, n_iter, next_label = _run_window(win, previous, wcfg)
    K = cl.K
    return AVWindowResult(
        events=_events(win, cl, e, stamp),
        visual_responsibilities=_expand(e.get("eta_v"), win.keep_v, K),
        audio_responsibilities=_expand(e.get("eta_a"), win.keep_a, K),
        log_likelihood=hist, n_iter=n_iter, state=_State(cl, next_label))


def warm_up() -> None:
    """Compile or load from cache the window kernels (and the WD-EM ones used by births)."""
    wdem.warm_up()
    rng = np.random.default_rng(0)
    X = np.array([0.0, 0.0, 2.0]) + 0.02 * rng.normal(size=(12, 3))
    itd = 1e-5 * rng.normal(size=20)
    cov = np.repeat(np.eye(3)[None] * 1e-4, 12, axis=0)
    for variant in wdem.VARIANTS:
        wc = wdem.WdemConfig(variant=variant)
        res = cluster_window(X, np.ones(12), itd, np.ones(20), wdem_config=wc)
        cluster_window(X, np.ones(12), itd, np.ones(20), wdem_config=wc,
                       visual_covariances=cov, previous=res.state)
