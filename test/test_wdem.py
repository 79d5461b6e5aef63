"""Weighted-data EM: kernels vs. references, FWD-EM vs. scikit-learn, robustness to
outliers, monotone log-likelihood, choice of K, and input validation."""
import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from av_perception.core import _wdem as WK
from av_perception.core import wdem
from av_perception.core.config import ConfigError, StageConfig


def _random_problem(rng, n, d, K, outlier):
    X = rng.normal(size=(n, d)) * 3.0
    w = rng.uniform(0.05, 1.0, n)
    means = rng.normal(size=(K, d)) * 3.0
    A = rng.normal(size=(K, d, d))
    covs = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(d)
    L = np.linalg.cholesky(covs)  # Sigma = L L^T: the kernels take L^-1 and log|Sigma|
    U = np.tril(np.linalg.inv(L))
    log_det = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    # put garbage in the upper triangle: kernels must read only the lower one
    U = U + np.triu(rng.normal(size=(K, d, d)), 1)
    log_pi = np.log(rng.dirichlet(np.ones(K)) * (0.8 if outlier else 1.0))
    Kc = K + (1 if outlier else 0)
    return X, w, means, U, log_det, log_pi, Kc


def _run_pair(name, *args, outs, min_work=1):
    """Run kernel and reference on copies of the output arrays; return both outputs."""
    results = []
    for table in (WK.KERNELS, WK.REFERENCES):
        o = [np.full_like(a, np.nan) for a in outs]
        table[name](*args, *o, min_work)
        results.append(o)
    return results


def _close(a, b, tol=1e-9):
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


# min_work = 1 forces the parallel prange path of every kernel, a huge one the serial path
@pytest.mark.parametrize("min_work", [1, 10**12])
@pytest.mark.parametrize("n", [50, 3000])
@pytest.mark.parametrize("d,K", [(1, 2), (2, 5), (3, 10)])
@pytest.mark.parametrize("outlier", [False, True])
def test_kernels_match_numpy_reference(min_work, n, d, K, outlier):
    rng = np.random.default_rng(n + 10 * d + K + outlier)
    X, w, means, U, log_det, log_pi, Kc = _random_problem(rng, n, d, K, outlier)
    log_out = np.log(0.2) - 3.0
    oc_fwd = 0.5 * d * (np.log(w) - np.log(2 * np.pi))
    outs = [np.empty((n, Kc)), np.empty((n, Kc)), np.empty(n)]
    got, ref = _run_pair("estep_fwd", X, w, oc_fwd, means, U, log_det, log_pi, log_out, outs=outs,
                         min_work=min_work)
    for g, r in zip(got, ref):
        _close(g, r)
    np.testing.assert_allclose(got[1].sum(axis=1), 1.0, atol=1e-12)

    alpha, beta = wdem.gamma_prior(w, d)
    a = alpha + 0.5 * d
    oc_wd = rng.normal(size=n)
    outs = [np.empty((n, Kc)), np.empty((n, Kc)), np.empty((n, K)), np.empty(n)]
    got, ref = _run_pair("estep_wd", X, a, beta, oc_wd, means, U, log_det, log_pi, log_out,
                         outs=outs, min_work=min_work)
    for g, r in zip(got, ref):
        _close(g, r)
    resp, post_w = got[1], got[2]

    logp = rng.normal(size=(n, Kc)) * 30
    logp[0, 0] = -np.inf
    got, ref = _run_pair("normalise_rows", logp,
                         outs=[np.empty((n, Kc)), np.empty((n, Kc)), np.empty(n)],
                         min_work=min_work)
    for g, r in zip(got, ref):
        _close(g, r)

    for pw in (post_w, np.ascontiguousarray(w[:, None])):
        got, ref = _run_pair("moments", X, resp, pw,
                             outs=[np.empty(Kc), np.empty(K), np.empty((K, d))],
                             min_work=min_work)
        for g, r in zip(got, ref):
            _close(g, r)
        for code in (WK.COV_FULL, WK.COV_DIAG, WK.COV_SPHERICAL):
            got, ref = _run_pair("scatter", X, resp, pw, means, code,
                                 outs=[np.empty((K, d, d))], min_work=min_work)
            _close(got[0], ref[0])


def test_vectorisable_exp_and_log_match_numpy():
    """exp_neg / log_pos (the branch-free exp and log of the fused pass) against numpy."""
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(5.0, 20000), -rng.uniform(0, 745, 20000),
                        [0.0, -0.0, -1e-300, -np.inf, -708.0, -708.5, -707.9, -0.34657359]])
    got, ref = np.empty_like(x), np.empty_like(x)
    WK.KERNELS["exp_neg"](x, got)
    WK.REFERENCES["exp_neg"](x, ref)
    # relative error 1e-14; 0 instead of the subnormal exp(x) below x = -708
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=3.4e-308)
    assert got[x == -np.inf][0] == 0.0 and got[x == 0.0][0] == 1.0
    y = np.concatenate([1.0 + rng.exponential(3.0, 20000), np.exp(rng.uniform(-700, 700, 20000)),
                        [1.0, 2.0, 0.5, 1.0 + 1e-15, np.sqrt(2.0), 3.0]])
    got, ref = np.empty_like(y), np.empty_like(y)
    WK.KERNELS["log_pos"](y, got)
    WK.REFERENCES["log_pos"](y, ref)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("min_work", [1, 10**12])
@pytest.mark.parametrize("d,K", [(1, 2), (2, 3), (3, 10), (4, 3)])
@pytest.mark.parametrize("outlier", [False, True])
@pytest.mark.parametrize("wd", [False, True])
def test_fused_em_pass_matches_reference(min_work, d, K, outlier, wd):
    """em_pass (E-step + centred M-step statistics in one pass) against its numpy
    reference, and against the separate kernels it replaces (log-likelihood, nk, means)."""
    n = 2000 + 37  # not a multiple of the block length
    rng = np.random.default_rng(7 * d + K + 2 * outlier + wd)
    X, w, means, U, log_det, log_pi, Kc = _random_problem(rng, n, d, K, outlier)
    log_out = np.log(0.2) - 3.0
    X[:3] = 1e4  # rows where every Gaussian component underflows (-inf without the outlier)
    alpha, beta = wdem.gamma_prior(w, d)
    a = alpha + 0.5 * d
    oc = rng.normal(size=n)
    for code in (WK.COV_FULL, WK.COV_DIAG, WK.COV_SPHERICAL):
        outs = {}
        lls = {}
        for name, table in (("kernel", WK.KERNELS), ("reference", WK.REFERENCES)):
            o = [np.full(Kc, np.nan), np.full(K, np.nan), np.full((K, d), np.nan),
                 np.full((K, d, d), np.nan)]
            o[3][:] = 0.0  # the kernel writes the whole array, the reference the used part
            lls[name] = table["em_pass"](X, w, a, beta, wd, oc, means, U, log_det, log_pi,
                                         log_out, Kc, code, *o, min_work)
            outs[name] = o
        assert lls["kernel"] == pytest.approx(lls["reference"], rel=1e-12)
        for g, r in zip(outs["kernel"], outs["reference"]):
            _close(g, r)
    # the same statistics as the separate E-step and moments kernels
    lr, resp, ll = np.empty((n, Kc)), np.empty((n, Kc)), np.empty(n)
    if wd:
        pw = np.empty((n, K))
        WK.estep_wd(X, a, beta, oc, means, U, log_det, log_pi, log_out, lr, resp, pw, ll, 1)
    else:
        pw = np.ascontiguousarray(w[:, None])
        WK.estep_fwd(X, w, oc, means, U, log_det, log_pi, log_out, lr, resp, ll, 1)
    nk, sw, sx = np.empty(Kc), np.empty(K), np.empty((K, d))
    WK.moments(X, resp, pw, nk, sw, sx, 1)
    assert lls["kernel"] == pytest.approx(ll.sum(), rel=1e-12)
    _close(outs["kernel"][0], nk)
    _close(outs["kernel"][1], sw)
    _close(outs["kernel"][2] + sw[:, None] * means, sx)  # centred on the current means


@pytest.mark.parametrize("case", ["prior", "other_a", "mixed_a", "far", "impossible"])
@pytest.mark.parametrize("outlier", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_wd_pass_paths_match_reference(case, outlier, d):
    """The WD pass takes t^-a as a power, without logs, in blocks whose a_i are all 1,
    3/2 or 2 (the prior's (1 + d) / 2 at d = 1, 2, 3), and works in the log domain
    otherwise, or when a row's component probabilities would be subnormal (observations
    1e130 away): both against the numpy reference, the stored responsibilities and
    posterior weights too."""
    n, K = 1500, 4
    rng = np.random.default_rng(11 + 2 * outlier + 5 * d)
    X, w, means, U, log_det, log_pi, Kc = _random_problem(rng, n, d, K, outlier)
    alpha, beta = wdem.gamma_prior(w, d)
    a = alpha + 0.5 * d
    assert np.all(a == (1 + d) / 2)
    if case == "other_a":
        a = rng.uniform(0.6, 2.0, n)
    elif case == "mixed_a":
        a[700:760] = 1.25  # one or two blocks take the log path, the others not
    elif case == "far":
        X[300:303] = 1e130  # 1 / t ~ 1e-260 for every component
        X[900] = -1e130
    elif case == "impossible":
        log_pi[1] = -np.inf
        X[:3] = 1e4
    oc = rng.normal(size=n)
    log_out = np.log(0.2) - 3.0
    stats = {}
    for name, table in (("kernel", WK.KERNELS), ("reference", WK.REFERENCES)):
        o = [np.full(Kc, np.nan), np.full(K, np.nan), np.full((K, d), np.nan),
             np.zeros((K, d, d))]
        ll = table["em_pass"](X, w, a, beta, True, oc, means, U, log_det, log_pi, log_out, Kc,
                              WK.COV_FULL, *o, 10**12)
        stats[name] = (ll, o)
    assert np.isfinite(stats["reference"][0])
    assert stats["kernel"][0] == pytest.approx(stats["reference"][0], rel=1e-12)
    for g, r in zip(stats["kernel"][1], stats["reference"][1]):
        _close(g, r)
    resp, post_w = np.full((n, Kc), np.nan), np.full((n, K), np.nan)
    WK._em_pass(X, w, a, beta, True, oc, means, U, log_det, log_pi, log_out, Kc, WK.COV_FULL,
                *[np.empty_like(v) for v in stats["reference"][1]], True, resp, post_w, 10**12)
    lr, r_ref, pw_ref, ll = np.empty((n, Kc)), np.empty((n, Kc)), np.empty((n, K)), np.empty(n)
    WK.estep_wd_reference(X, a, beta, oc, means, U, log_det, log_pi, log_out, lr, r_ref,
                          pw_ref, ll)
    _close(resp, r_ref)
    _close(post_w, pw_ref)
    if case == "impossible":
        assert np.all(resp[:, 1] == 0.0)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_prec_chol_matches_reference(d):
    """Precision factors and log-determinants, also through the eigenvalue floor of a
    singular covariance (which every matrix then goes through, as in the reference)."""
    rng = np.random.default_rng(d)
    K = 4
    A = rng.normal(size=(K, d, d))
    covs = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(d)
    singular = covs.copy()
    v = rng.normal(size=d)
    singular[2] = np.outer(v, v)  # rank 1
    if d == 1:
        singular[2] = 0.0
    for c in (covs + np.triu(rng.normal(size=(K, d, d)), 1), singular):  # upper unread
        outs = {}
        for name, table in (("kernel", WK.KERNELS), ("reference", WK.REFERENCES)):
            U, ld = np.full((K, d, d), np.nan), np.full(K, np.nan)
            table["prec_chol"](c, U, ld)
            assert np.all(np.triu(U, 1) == 0.0)
            outs[name] = (U, ld)
        if c is not singular:
            _close(outs["kernel"][0], outs["reference"][0])
            _close(outs["kernel"][1], outs["reference"][1])
        else:
            # floored to condition number 1e12, the factors differ by the rounding of the
            # two LAPACK eigen-solvers amplified 1e6 times: compare the matrices they
            # represent, L L^T, and the log-determinants to 1e-4
            L = {k: np.linalg.inv(v[0]) for k, v in outs.items()}
            LLt = {k: v @ np.swapaxes(v, 1, 2) for k, v in L.items()}
            _close(LLt["kernel"], LLt["reference"])
            np.testing.assert_allclose(outs["kernel"][1], outs["reference"][1], atol=1e-4)


@pytest.mark.parametrize("d,K", [(1, 2), (3, 4)])
@pytest.mark.parametrize("outlier", [False, True])
def test_em_update_matches_reference(d, K, outlier):
    """The M-step update from centred statistics, with one empty component."""
    rng = np.random.default_rng(d + K + outlier)
    X, w, means, U, log_det, log_pi, Kc = _random_problem(rng, 500, d, K, outlier)
    A = rng.normal(size=(K, d, d))
    covs = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(d)
    means[1] = 1e6  # component 1 gets no observation: keeps its mean and covariance
    for code in (WK.COV_FULL, WK.COV_DIAG, WK.COV_SPHERICAL):
        stats = [np.zeros(Kc), np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))]
        WK.em_pass(X, w, w, w, False, np.zeros(len(X)), means, U, log_det, log_pi,
                   np.log(0.1) - 5.0, Kc, code, *stats, 1)
        assert stats[0][1] == 0.0
        outs = {}
        for name, table in (("kernel", WK.KERNELS), ("reference", WK.REFERENCES)):
            o = [np.full((K, d), np.nan), np.full((K, d, d), np.nan), np.full(K, np.nan)]
            pi0 = table["em_update"](means, covs, *stats, code, 1e-6, len(X), *o)
            outs[name] = (*o, np.array([pi0]))
        for g, r in zip(outs["kernel"], outs["reference"]):
            _close(g, r)
        np.testing.assert_array_equal(outs["kernel"][0][1], means[1])
        np.testing.assert_array_equal(outs["kernel"][1][1], covs[1])
        assert (outs["kernel"][3][0] > 0) == outlier


@pytest.mark.parametrize("variant", ["fwd", "wd"])
@pytest.mark.parametrize("outlier", [False, True])
def test_em_loop_matches_reference(variant, outlier):
    """The whole EM loop in one kernel call against the Python loop over the references:
    full / diag / spherical, an empty component, a converging run (tol > 0) and collinear
    data with reg_covar = 0 (singular full covariances: the eigenvalue floor)."""
    rng = np.random.default_rng(5 + outlier + 2 * (variant == "wd"))
    n, d, K = 700, 2, 4
    X = np.concatenate([rng.normal(c, 0.6, (n // 3, d)) for c in ([0, 0], [3, 1], [0, 4])])
    X = np.concatenate([X, rng.uniform(-6, 8, (n - len(X), d))])
    w = rng.uniform(0.1, 1.0, len(X))
    means = np.array([[0.5, 0.2], [2.5, 1.0], [0.2, 3.5], [1e6, 1e6]])  # the last: empty
    covs = np.repeat(np.eye(d)[None], K, axis=0)
    mixing = np.full(K, (0.8 if outlier else 1.0) / K)
    alpha, beta = wdem.gamma_prior(w, d)
    a = alpha + 0.5 * d
    oc = rng.normal(size=len(X))
    wd = variant == "wd"
    X_line = np.column_stack([X[:, 0], 2.0 * X[:, 0]])  # every covariance singular
    for code in (WK.COV_FULL, WK.COV_DIAG, WK.COV_SPHERICAL):
        for data, reg, max_iter, tol in ((X, 1e-6, 12, 0.0), (X, 1e-6, 500, 1e-6),
                                         (X_line, 0.0, 10, 0.0)):
            runs, outs = [], []
            for table in (WK.KERNELS, WK.REFERENCES):
                o = [np.full((len(X), K + outlier), np.nan), np.full((len(X), K), np.nan)]
                runs.append(table["em_loop"](data, w, a, beta, wd, oc, means, covs, mixing,
                                             0.2 if outlier else 0.0, np.log(1.0 / 400.0),
                                             outlier, code, reg, max_iter, tol, *o, 10**12))
                outs.append(o)
            got, ref = runs
            assert got[5] == ref[5] and got[6] == ref[6], (code, reg, tol)  # n_iter, converged
            assert len(got[4]) == got[5] + 1
            if tol > 0:
                assert got[6] and got[5] < max_iter
            else:
                assert got[5] == max_iter and not got[6]
            if reg == 0.0 and code == WK.COV_FULL:
                _assert_singular_fit_is_sound(got, ref, data, outlier)
                continue
            for g, r in zip(got[:5], ref[:5]):
                _close(np.asarray(g), np.asarray(r), 1e-9)
            # the E-step at the returned parameters: responsibilities, posterior weights
            _close(outs[0][0], outs[1][0])
            np.testing.assert_allclose(outs[0][0].sum(axis=1), 1.0, atol=1e-12)
            if wd:
                _close(outs[0][1], outs[1][1])
            else:
                assert np.all(np.isnan(outs[0][1]))  # FWD: post_w untouched
            np.testing.assert_array_equal(got[0][3], means[3])  # the empty component
    # the inputs are left alone
    assert means[3, 0] == 1e6 and np.all(covs == np.eye(d))


def _assert_singular_fit_is_sound(got, ref, data, outlier):
    """Collinear data with reg_covar = 0: every full covariance is singular and the
    precision factors are floored to condition number 1e12, which amplifies the rounding
    of the two LAPACK eigen-solvers (and of fastmath, which differs between AVX2 and
    AVX-512) a millionfold; after an iteration or two the trajectories are decided by
    rounding (the log-likelihood is not even monotone here).  So compare what does not
    depend on rounding: the starting log-likelihood (well-conditioned covariances), and for
    each side that the fit is finite and stays in the data's subspace."""
    _close(got[4][:1], ref[4][:1])
    normal = np.array([2.0, -1.0]) / np.sqrt(5.0)  # the data lie on x2 = 2 x1
    assert np.allclose(data @ normal, 0.0, atol=1e-12)
    for means, covs, mixing, out, history, n_iter, _ in (got, ref):
        assert all(np.all(np.isfinite(v)) for v in (means, covs, mixing, history))
        assert len(history) == n_iter + 1
        fitted = mixing > 1e-3
        # weighted means of points on the line stay on it, and the line's normal is the
        # null direction of every covariance fitted to it
        np.testing.assert_allclose(means[fitted] @ normal, 0.0, atol=1e-6)
        spread = np.einsum("kij,j->ki", covs[fitted], normal)
        scale = np.trace(covs[fitted], axis1=1, axis2=2)[:, None]
        assert np.all(np.abs(spread) <= 1e-6 * scale)
        np.testing.assert_allclose(np.swapaxes(covs, 1, 2), covs, atol=1e-9)
        assert mixing.sum() + (out if outlier else 0.0) == pytest.approx(1.0, abs=1e-9)


def _assert_numba_fit_equals_reference(X, w, **kwargs):
    """wdem.fit with 3 components and the outlier class, numba and numpy reference: the
    same number of iterations and every result array within 1e-8."""
    # one start: with tol = 0 two starts that reach the same optimum tie to rounding
    a, b = [wdem.fit(X, w, 3, outlier_volume="auto", tol=0.0, use_numba=u, n_init=1,
                     **kwargs) for u in (True, False)]
    assert a.n_iter == b.n_iter
    for name in ("means", "scales", "mixing", "responsibilities", "posterior_weights",
                 "log_likelihood"):
        _close(getattr(a, name), getattr(b, name), 1e-8)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("variant", ["fwd", "wd"])
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_fit_numba_equals_reference(variant, covariance, parallel, monkeypatch):
    if parallel:
        monkeypatch.setattr(WK, "PARALLEL_MIN_WORK", 1)
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(c, 0.5, (150, 2)) for c in ([0, 0], [3, 1], [0, 4])])
    w = rng.uniform(0.2, 1.0, len(X))
    _assert_numba_fit_equals_reference(X, w, variant=variant, covariance=covariance,
                                       seed=1, max_iter=40)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("variant", ["fwd", "wd"])
def test_fit_numba_equals_reference_1d(variant, parallel, monkeypatch):
    """d = 1 (its own fused pass): whole fits, with the outlier component, the stored
    responsibilities and posterior weights, serial and chunked."""
    if parallel:
        monkeypatch.setattr(WK, "PARALLEL_MIN_WORK", 1)
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(c, s, 400) for c, s in ((-3, 0.5), (0, 1.0), (4, 0.3))])
    X = np.concatenate([X, rng.uniform(-20, 20, 30)])[:, None]
    w = rng.uniform(0.2, 1.0, len(X))
    _assert_numba_fit_equals_reference(X, w, variant=variant, covariance="full", seed=2,
                                       max_iter=30)


@pytest.mark.parametrize("variant", ["fwd", "wd"])
@pytest.mark.parametrize("outlier", [None, "auto"])
def test_fit_numba_equals_reference_zero_weights_empty_component(variant, outlier):
    """fit through em_loop vs the reference loop: zero-weight rows (left out of the fit)
    and a warm start with a component far from every observation (it stays empty)."""
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 0.5, (120, 2)) for c in ([0, 0], [3, 1], [0, 4])])
    w = rng.uniform(0.2, 1.0, len(X))
    w[::17] = 0.0
    warm = wdem.WdemResult(
        means=np.array([[0.3, 0.1], [2.5, 1.2], [0.1, 3.6], [1e9, -1e9]]),
        scales=np.repeat(np.eye(2)[None], 4, axis=0), mixing=np.full(4, 0.25),
        outlier_mixing=0.1 if outlier else None, responsibilities=None,
        posterior_weights=None, log_likelihood=None, n_iter=0, converged=False)
    for covariance in ("full", "diag", "spherical"):
        runs = [wdem.fit(X, w, 4, variant=variant, covariance=covariance,
                         outlier_volume=outlier, init="warm", warm_start=warm, max_iter=10,
                         tol=0.0, use_numba=u) for u in (True, False)]
        a, b = runs
        assert a.n_iter == b.n_iter == 10
        np.testing.assert_array_equal(a.means[3], [1e9, -1e9])
        assert np.all(a.posterior_weights[::17] == 0.0)
        for name in ("means", "covariances", "mixing", "responsibilities",
                     "posterior_weights", "log_likelihood"):
            _close(getattr(a, name), getattr(b, name), 1e-9)


def _sklearn_equivalent(covariance):
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal([0, 0, 0], 0.6, (200, 3)),
                        rng.normal([2.0, 1.0, 0.5], [0.9, 0.5, 0.7], (250, 3)),
                        rng.normal([0, 2.5, 1], 0.5, (150, 3))])
    w = np.ones(len(X))
    start = wdem.fit(X, w, 3, variant="fwd", covariance=covariance, seed=0, max_iter=1)
    prec = np.linalg.inv(start.covariances)
    if covariance == "diag":
        prec = np.diagonal(prec, axis1=1, axis2=2)
    elif covariance == "spherical":
        prec = prec[:, 0, 0]
    n_steps = 8
    ours = wdem.fit(X, w, 3, variant="fwd", covariance=covariance, init="warm",
                    warm_start=start, max_iter=n_steps, tol=0.0, reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: we stop on purpose
        gm = GaussianMixture(3, covariance_type=covariance, means_init=start.means,
                             weights_init=start.mixing, precisions_init=prec, max_iter=n_steps,
                             tol=0.0, reg_covar=1e-6).fit(X)
    covs = gm.covariances_
    if covariance == "diag":
        covs = np.array([np.diag(c) for c in covs])
    elif covariance == "spherical":
        covs = np.array([np.eye(3) * c for c in covs])
    return ours, gm, covs, X


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_fwd_with_equal_weights_equals_sklearn(covariance):
    ours, gm, covs, X = _sklearn_equivalent(covariance)
    assert ours.n_iter == gm.n_iter_ == 8
    # the parameters still moved during these 8 steps (the comparison is not trivial)
    assert np.abs(ours.log_likelihood[-1] - ours.log_likelihood[0]) > 1.0
    np.testing.assert_allclose(ours.means, gm.means_, atol=1e-9)
    np.testing.assert_allclose(ours.covariances, covs, atol=1e-9)
    np.testing.assert_allclose(ours.mixing, gm.weights_, atol=1e-9)
    # sklearn's lower bound is the mean log-likelihood of the E-step before its last M-step
    assert ours.log_likelihood[-2] / len(X) == pytest.approx(gm.lower_bound_, abs=1e-9)


TRUE3 = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])


def _outlier_scene(seed):
    """300 inliers (3 clusters, weights 0.5-1) + 400 uniform outliers (weights 0.05-0.5)."""
    rng = np.random.default_rng(seed)
    Xi = np.concatenate([rng.normal(t, 0.5, (100, 2)) for t in TRUE3])
    Xo = rng.uniform(-12, 14, (400, 2))
    X = np.concatenate([Xi, Xo])
    w = np.concatenate([rng.uniform(0.5, 1.0, 300), rng.uniform(0.05, 0.5, 400)])
    start = TRUE3 + rng.normal(0, 0.8, (3, 2))  # the same rough start for every method
    return X, w, start


def _worst_error(means):
    C = np.linalg.norm(TRUE3[:, None] - means[None], axis=2)
    r, c = linear_sum_assignment(C)
    return C[r, c].max()


def test_wd_em_recovers_clusters_under_heavy_outliers_where_gmm_fails():
    from sklearn.mixture import GaussianMixture

    errs = {"gmm": [], "fwd": [], "wd": [], "wd+outlier": []}
    for seed in range(6):
        X, w, start = _outlier_scene(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm = GaussianMixture(3, means_init=start, random_state=0)  # reproducible
            errs["gmm"].append(_worst_error(gmm.fit(X).means_))
        errs["fwd"].append(_worst_error(
            wdem.fit(X, w, 3, variant="fwd", init="means", means_init=start).means))
        errs["wd"].append(_worst_error(
            wdem.fit(X, w, 3, variant="wd", init="means", means_init=start).means))
        errs["wd+outlier"].append(_worst_error(
            wdem.fit(X, w, 3, variant="wd", init="means", means_init=start,
                     outlier_volume="auto").means))
    worst = {k: max(v) for k, v in errs.items()}
    best_plain = {k: min(errs[k]) for k in ("gmm", "fwd")}
    # measured (6 seeds): WD 0.10-0.24, WD + outlier class 0.12-0.21; GMM 2.2-7.6, FWD 1.5-2.7
    assert worst["wd"] < 0.27 and worst["wd+outlier"] < 0.25, worst
    assert best_plain["gmm"] > 2.0 and best_plain["fwd"] > 1.3, best_plain
    assert best_plain["gmm"] > 5 * worst["wd"]


@pytest.mark.parametrize("variant", ["fwd", "wd"])
@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_log_likelihood_never_decreases(variant, covariance):
    X, w, _ = _outlier_scene(11)
    for outlier in (None, "auto"):
        r = wdem.fit(X, w, 4, variant=variant, covariance=covariance, outlier_volume=outlier,
                     seed=2, max_iter=300, tol=1e-10)
        ll = r.log_likelihood
        assert len(ll) == r.n_iter + 1 and r.n_iter > 5
        steps = np.diff(ll)
        assert np.all(steps >= -1e-9 * np.abs(ll[:-1])), steps.min()


def _model_data(d, variant, seed, n=150, K=4, outliers=0):
    """Data drawn from the model itself: x ~ N(c_k, 0.6^2 I / w_true), w_true = w (FWD) or
    w_true ~ Gamma(alpha, beta) of the WD prior; clusters at least 8 apart."""
    rng = np.random.default_rng(seed)
    half = 12.0 if d > 1 else 24.0
    cent = rng.uniform(-half, half, (K, d))
    while min(np.linalg.norm(a - b) for i, a in enumerate(cent) for b in cent[i + 1:]) < 8:
        cent = rng.uniform(-half, half, (K, d))
    w = rng.uniform(0.3, 1.0, n * K)
    if variant == "wd":
        alpha, beta = wdem.gamma_prior(w, d)
        w_true = rng.gamma(alpha, 1.0 / beta)
    else:
        w_true = w
    X = np.repeat(cent, n, axis=0) + rng.normal(size=(n * K, d)) * 0.6 / np.sqrt(w_true)[:, None]
    if outliers:
        X = np.concatenate([X, rng.uniform(-16, 16, (outliers, d))])
        w = np.concatenate([w, rng.uniform(0.05, 0.3, outliers)])
    return X, w, cent


# (d, variant, covariance, criterion): data drawn from the variant's own model
SELECT_CASES = [  # measured over 10 data sets (seeds 20-29): correct K in 8-10 of 10
    (1, "fwd", "full", "mml"), (1, "fwd", "full", "bic"),
    (2, "fwd", "spherical", "mml"), (2, "fwd", "spherical", "bic"),
    (3, "fwd", "full", "bic"), (3, "fwd", "diag", "bic"),
    (2, "wd", "full", "mml"), (3, "wd", "diag", "mml"), (3, "wd", "full", "mml"),
]


@pytest.mark.parametrize("d,variant,covariance,criterion", SELECT_CASES)
def test_select_finds_true_number_of_clusters(d, variant, covariance, criterion):
    """True K = 4 in [1, 7]; three data sets per case, at least two must give K = 4 with
    every mean within 0.3 of the truth (cluster std 0.6 / sqrt(w))."""
    hits = []
    for seed in (20, 21, 22):
        X, w, cent = _model_data(d, variant, seed=seed + d)
        r = wdem.select(X, w, 1, 7, criterion=criterion, variant=variant,
                        covariance=covariance, seed=0)
        assert r.criterion == criterion and set(r.criterion_values) <= set(range(1, 8))
        ok = r.n_components == 4
        if ok:
            C = np.linalg.norm(cent[:, None] - r.means[None], axis=2)
            rows, cols = linear_sum_assignment(C)
            ok = C[rows, cols].max() < 0.3
        hits.append(ok)
    assert sum(hits) >= 2, hits


def test_select_with_outlier_component():
    X, w, cent = _model_data(2, "fwd", seed=5, outliers=120)
    for criterion in ("mml", "bic"):
        r = wdem.select(X, w, 1, 7, criterion=criterion, variant="fwd", outlier_volume="auto",
                        seed=0)
        assert r.n_components == 4, (criterion, r.criterion_values)
        assert r.responsibilities.shape == (len(X), 5)
        assert r.outlier_mixing is not None and 0.05 < r.outlier_mixing < 0.4
        # inliers are labelled with a cluster, most clutter with the outlier class
        lab = r.labels
        assert np.mean(lab[:600] >= 0) > 0.97
        assert np.mean(lab[600:] == -1) > 0.6


def test_result_shapes_zero_weights_and_warm_start():
    X, w, _ = _model_data(3, "fwd", seed=1, K=2)
    w[:5] = 0.0
    r = wdem.fit(X, w, 2, variant="wd", covariance="spherical", outlier_volume=50.0, seed=0)
    assert r.means.shape == (2, 3) and r.covariances.shape == (2, 3, 3)
    assert r.responsibilities.shape == (len(X), 3) and r.posterior_weights.shape == (len(X), 2)
    np.testing.assert_allclose(r.responsibilities.sum(1), 1.0)
    assert np.all(r.posterior_weights[:5] == 0.0)
    np.testing.assert_allclose(r.responsibilities[0], [*r.mixing, r.outlier_mixing])
    assert r.mixing.sum() + r.outlier_mixing == pytest.approx(1.0)
    off = r.covariances - np.eye(3) * r.covariances[:, :1, :1]
    assert np.all(off == 0.0)  # spherical: c * I
    warm = wdem.fit(X, w, 2, variant="wd", covariance="spherical", outlier_volume=50.0,
                    init="warm", warm_start=r)
    assert warm.n_iter <= 3 and warm.converged
    np.testing.assert_allclose(warm.means, r.means, atol=1e-3)
    m = wdem.fit(X, w, 2, init="means", means_init=r.means, variant="fwd", covariance="diag")
    assert np.allclose(np.triu(m.covariances[0], 1), 0.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(X=np.zeros(5), weights=np.ones(5)), "2-D array"),
    (dict(X=np.zeros((5, 2)), weights=np.ones(4)), r"weights must have shape \(N,\)"),
    (dict(X=np.array([[0.0, np.nan]] * 5), weights=np.ones(5)), "NaN or infinite"),
    (dict(X=np.zeros((5, 2)), weights=np.array([1, 1, -1, 1, 1.0])), "weights must be >= 0"),
    (dict(X=np.zeros((5, 2)), weights=np.array([1, 1, np.inf, 1, 1.0])), "weights contain NaN"),
    (dict(X=np.zeros((5, 2)), weights=np.zeros(5)), "all weights are zero"),
    (dict(X=np.zeros((3, 2)), weights=np.ones(3), n_components=4), "larger than the number"),
    (dict(X=np.zeros((5, 2)), weights=np.array([1, 1, 0, 0, 0.0]), n_components=3),
     "positive weight"),
    (dict(variant="em"), "variant='em'"),
    (dict(covariance="tied"), "covariance='tied'"),
    (dict(init="random"), "init='random'"),
    (dict(init="means"), "means_init"),
    (dict(init="means", means_init=np.zeros((3, 3))), r"means_init must have shape"),
    (dict(init="warm"), "warm_start"),
    (dict(outlier_volume=-1.0), "outlier_volume"),
    (dict(max_iter=0), "max_iter"),
    (dict(reg_covar=np.nan), "reg_covar"),
])
def test_fit_errors(kwargs, message):
    args = dict(X=np.arange(20.0).reshape(10, 2), weights=np.ones(10), n_components=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        wdem.fit(args.pop("X"), args.pop("weights"), args.pop("n_components"), **args)


def test_select_errors_and_config():
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(ValueError, match="k_min=3 must be <= k_max=2"):
        wdem.select(X, np.ones(10), 3, 2)
    with pytest.raises(ValueError, match="k_max=11 is larger"):
        wdem.select(X, np.ones(10), 1, 11)
    with pytest.raises(ValueError, match="criterion='aic'"):
        wdem.select(X, np.ones(10), 1, 2, criterion="aic")
    assert StageConfig.REGISTRY["wdem"] == (wdem.WdemConfig,)
    with pytest.raises(ConfigError, match="wdem.k_min"):
        wdem.WdemConfig(k_min=5, k_max=2)
    with pytest.raises(ConfigError, match="wdem.variant"):
        wdem.WdemConfig(variant="em")
    cfg = wdem.WdemConfig(k_max=5, criterion="bic", outlier=False)
    assert cfg.fit_kwargs()["outlier_volume"] is None
    Xc, w, _ = _model_data(2, "fwd", seed=3, K=2)
    r = cfg.select(Xc, w)
    assert r.n_components == 2 and r.criterion == "bic"


CACHE_CHECK = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from av_perception.core import _wdem as WK, wdem
from test_wdem import _random_problem

worst = 0.0
for d, K, wd in ((1, 2, True), (3, 10, False), (2, 3, True)):
    n = 2037
    rng = np.random.default_rng(7 * d + K + wd)
    X, w, means, U, log_det, log_pi, Kc = _random_problem(rng, n, d, K, False)
    alpha, beta = wdem.gamma_prior(w, d)
    a, oc = alpha + 0.5 * d, rng.normal(size=n)
    # the parallel build (min_work 1) and the cached serial build over the same chunks
    passes = (WK.em_pass, WK.em_pass.serial, WK.REFERENCES["em_pass"])
    lls = []
    for kernel in passes:
        o = [np.zeros(Kc), np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d))]
        lls.append(kernel(X, w, a, beta, wd, oc, means, U, log_det, log_pi, np.log(0.05), Kc,
                          WK.COV_FULL, *o, 1))
    worst = max(worst, *(abs(ll - lls[-1]) / abs(lls[-1]) for ll in lls[:-1]))
    covs = np.repeat(np.eye(d)[None], K, axis=0)
    hist = []
    for kernel in (WK.em_loop, WK.em_loop.serial, WK.REFERENCES["em_loop"]):
        o = [np.empty((n, K)), np.empty((n, K))]
        hist.append(kernel(X, w, a, beta, wd, oc, means, covs, np.full(K, 1.0 / K), 0.0, 0.0,
                           False, WK.COV_FULL, 1e-6, 5, 0.0, *o, 1)[4])
    for h in hist[:-1]:
        worst = max(worst, float(np.max(np.abs(h - hist[-1]) / np.abs(hist[-1]))))
print(worst)
"""


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kernels_loaded_from_the_cache_match_the_reference(tmp_path):
    """The fused pass and the EM loop, parallel and serial builds, agree with the reference
    both in the process that compiles them and in a later one that loads the serial builds
    from numba's on-disk cache (a cached prange build computed log-likelihoods off by
    k log 2: the parallel builds are never cached)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    test_dir = str(Path(__file__).parent)
    for run in ("compiles and writes the cache", "loads the cache"):
        out = subprocess.run([sys.executable, "-c", CACHE_CHECK, test_dir], env=env,
                             capture_output=True, text=True, timeout=1700)
        assert out.returncode == 0, (run, out.stderr[-2000:])
        assert float(out.stdout.split()[-1]) < 1e-12, (run, out.stdout)
    assert any((tmp_path / "numba_cache").rglob("*.nbi"))
