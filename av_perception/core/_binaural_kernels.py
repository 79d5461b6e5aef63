"""Per-frame binaural feature kernel (numba) and its plain-numpy reference.

Both take the same arguments and write the same outputs (:func:`binaural_kernel`,
:func:`binaural_reference`; pooled ITD: :func:`pooled_kernel`).  The public entry point
is :class:`av_perception.core.audio.BinauralFrontEnd`, which validates inputs first.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

P_PSD_ALPHA = 0
P_RISE = 1
P_BIN_THR = 2
P_ACT_MID = 3
P_ACT_SLOPE = 4
P_COH_ALPHA = 5
P_COH_EXP = 6
P_ONSET_DB = 7
P_MODE = 8  # 0 none, 1 coherence, 2 onset, 3 coherence+onset, 4 cdr, 5 cdr+onset
P_NEWTON = 9
P_CDR_EXP = 10
P_MEMORY = 11  # decay per frame of the precedence memory (0: ITD of the frame alone)
# precedence memory per bin: M <- (1 - w) * memory * M + w * u, with w u = the frame's
# weighted PHAT term (w in [0, 1]): evidence replaces the memory, its absence holds it
P_GATE = 12  # a frame whose own GCC-PHAT (weights without the onset factor) peaks at least
# this high and whose mean weight (same weights) is at least P_GATE_DIRECT is read alone;
# the memory gives the ITD of the other frames
P_GATE_DIRECT = 13
P_ALONE_POWER = 14  # a frame read alone weights its bins by (weight without onset) ** this
# a second talker: a frame below P_GATE whose own GCC-PHAT peak is at least
# P_NEW_SEPARATION (s) from the memory's is read alone when an earlier such frame, at most
# P_NEW_WINDOW frames before (0: off), peaked within P_NEW_AGREE (s) of it
P_NEW_SEPARATION = 15
P_NEW_AGREE = 16
P_NEW_WINDOW = 17
P_NEW_SNR = 18  # dB: frame SNR a confirmed second-talker frame needs to be read alone
P_HOLD = 19  # decay per frame of the precedence hold (0: off): a bin's memory is replaced only
# by the part of its weight above the held weight of its strongest recent evidence (decayed)
# bins that pass the noise mask weighted by (SNR over the mask threshold) ** -this (0: off):
# the mask keeps the bins where the room's reflections add up with the direct path (their
# phase reads the reflections' shrunk ITD) and drops those where they cancel
P_SNR_WEIGHT = 20
# the same SNR weight, (SNR over the mask threshold) ** -this (0: off), applied to the ITD's
# objective only (the peak of a frame read alone and the memory's phasors), not to the
# direct-path weight, the gate, the memory's replacement or the reliability
P_SNR_WEIGHT_ITD = 21
# the precedence memory's evidence weighted by the onset read from the power rise summed
# over the bins within this many bins of each bin (0: the bin's own rise, as the frame's
# own cross-spectrum and direct-path weight always are): the rise of a band wider than the
# comb that a reflection a few ms after the direct sound cuts into the spectrum, so that the
# onset weight does not favour the bins where the reflection adds to the direct sound
P_ONSET_BINS = 22
# a frame that passes P_GATE but whose own peak lies at least this far (s) from the memory's,
# between it and the front (a smaller |ITD| on the memory's side, or within this distance
# past ITD 0), is a second talker's candidate (read alone only when confirmed as above; 0:
# off): in a single talker's room such frames read the diffuse noise (coherent, at ITD 0, at
# low frequencies) or the reflections (elevated: shrunk ITDs)
P_GATE_SEPARATION = 23
N_PARAMS = 24
#: rows of the front-end's state: psd, noise, S_ll, S_rr, Re S_lr, Im S_lr, Re M, Im M, hold,
#: second talker
N_STATE = 10

OUT_ITD = 0
OUT_RELIABILITY = 1
OUT_ILD = 2
OUT_ACTIVITY = 3
OUT_DIRECT = 4
OUT_SNR = 5
OUT_NBINS = 6
OUT_BANDS = 7

EPS = 1e-20
SILENCE = 1e-12  # frame power (sum of |X|^2) below which a frame is digital silence


@njit(cache=True)
def direct_to_total(s_ll, s_rr, re_lr, im_lr, gamma_n):
    """Direct-to-total power ratio CDR / (1 + CDR) in [0, 1] of one bin from its smoothed
    auto- and cross-spectra and the diffuse-field coherence ``gamma_n``: the DOA-independent
    coherent-to-diffuse ratio estimator of Schwarz & Kellermann (2015)."""
    norm = math.sqrt(s_ll * s_rr) + EPS
    gr = re_lr / norm
    gi = im_lr / norm
    g2 = gr * gr + gi * gi
    if g2 >= 1.0 - 1e-9:
        return 1.0
    disc = gamma_n * gamma_n * (gr * gr - g2 + 1.0) - 2.0 * gamma_n * gr + g2
    if disc < 0.0:
        disc = 0.0
    cdr = (gamma_n * gr - g2 - math.sqrt(disc)) / (g2 - 1.0)
    if cdr <= 0.0:
        return 0.0
    return cdr / (1.0 + cdr)


def direct_to_total_reference(s_ll, s_rr, re_lr, im_lr, gamma_n):
    """Plain-numpy reference of :func:`direct_to_total` (arrays)."""
    norm = np.sqrt(s_ll * s_rr) + EPS
    gr, gi = re_lr / norm, im_lr / norm
    g2 = gr ** 2 + gi ** 2
    full = g2 >= 1.0 - 1e-9
    g2s = np.where(full, 0.0, g2)
    disc = np.maximum(gamma_n ** 2 * (gr ** 2 - g2s + 1.0) - 2.0 * gamma_n * gr + g2s, 0.0)
    cdr = np.maximum((gamma_n * gr - g2s - np.sqrt(disc)) / (g2s - 1.0), 0.0)
    return np.where(full, 1.0, cdr / (1.0 + cdr))


@njit(cache=True)
def gcc_peak(a, b, mask, omega, scan_tau, scan_cos, scan_sin, tau_max, n_newton):
    """Peak (tau s, value) of r(tau) = sum_k a_k cos(omega_k tau) + b_k sin(omega_k tau)
    over |tau| <= tau_max: coarse scan on ``scan_tau``, then Newton steps."""
    n_bins = a.shape[0]
    n_lags = scan_tau.shape[0]
    step = scan_tau[1] - scan_tau[0] if n_lags > 1 else tau_max
    d_omega = omega[1] - omega[0] if n_bins > 1 else 0.0
    best = -1e300
    best_tau = 0.0
    for j in range(n_lags):
        r = 0.0
        for k in range(n_bins):
            if mask[k]:
                r += a[k] * scan_cos[j, k] + b[k] * scan_sin[j, k]
        if r > best:
            best = r
            best_tau = scan_tau[j]
    tau = best_tau
    for _ in range(n_newton):
        zr = 1.0
        zi = 0.0
        er = math.cos(d_omega * tau)
        ei = math.sin(d_omega * tau)
        r1 = 0.0
        r2 = 0.0
        for k in range(n_bins):
            if mask[k]:
                w = omega[k]
                r1 += w * (-a[k] * zi + b[k] * zr)
                r2 -= w * w * (a[k] * zr + b[k] * zi)
            nr = zr * er - zi * ei
            zi = zr * ei + zi * er
            zr = nr
        if r2 >= 0.0:
            break
        delta = -r1 / r2
        if delta > step:
            delta = step
        elif delta < -step:
            delta = -step
        tau += delta
        if tau > tau_max:
            tau = tau_max
        elif tau < -tau_max:
            tau = -tau_max
        if abs(delta) < 1e-10:
            break
    r = 0.0
    for k in range(n_bins):
        if mask[k]:
            r += a[k] * math.cos(omega[k] * tau) + b[k] * math.sin(omega[k] * tau)
    if r < best:  # Newton must not lose the coarse peak
        return best_tau, best
    return tau, r


@njit(cache=True)
def pooled_kernel(cross, weights, omega, scan_tau, scan_cos, scan_sin, tau_max, n_newton):
    """ITD of several frames pooled: the peak of sum_t w_t r_t(tau), where r_t is frame
    t's normalised weighted GCC-PHAT (``cross`` (F, 2, B) from the frame kernel).
    Returns (tau s or NaN, reliability in [0, 1])."""
    n_frames, _, n_bins = cross.shape
    a = np.zeros(n_bins)
    b = np.zeros(n_bins)
    total = 0.0
    for f in range(n_frames):
        w = weights[f]
        if w <= 0.0:
            continue
        total += w
        for k in range(n_bins):
            a[k] += w * cross[f, 0, k]
            b[k] += w * cross[f, 1, k]
    mask = np.zeros(n_bins, dtype=np.bool_)
    for k in range(n_bins):
        mask[k] = a[k] != 0.0 or b[k] != 0.0
    if total <= 0.0 or not mask.any():
        return np.nan, 0.0
    tau, r = gcc_peak(a, b, mask, omega, scan_tau, scan_cos, scan_sin, tau_max, n_newton)
    rel = r / total
    return tau, rel if rel > 0.0 else 0.0


def gcc_peak_reference(a, b, mask, omega, scan_tau, scan_cos, scan_sin, tau_max, n_newton):
    """Plain-numpy reference of :func:`gcc_peak`."""
    step = scan_tau[1] - scan_tau[0] if len(scan_tau) > 1 else tau_max
    scan = scan_cos[:, mask] @ a[mask] + scan_sin[:, mask] @ b[mask]
    j = int(np.argmax(scan))
    best, best_tau = scan[j], scan_tau[j]
    tau = best_tau
    om, am, bm = omega[mask], a[mask], b[mask]
    for _ in range(n_newton):
        c, s = np.cos(om * tau), np.sin(om * tau)
        r1 = np.sum(om * (-am * s + bm * c))
        r2 = -np.sum(om ** 2 * (am * c + bm * s))
        if r2 >= 0:
            break
        delta = float(np.clip(-r1 / r2, -step, step))
        tau = float(np.clip(tau + delta, -tau_max, tau_max))
        if abs(delta) < 1e-10:
            break
    r = np.sum(am * np.cos(om * tau) + bm * np.sin(om * tau))
    if r < best:
        return best_tau, best
    return tau, r


def pooled_reference(cross, weights, omega, scan_tau, scan_cos, scan_sin, tau_max, n_newton):
    """Plain-numpy reference of :func:`pooled_kernel`."""
    w = np.where(weights > 0, weights, 0.0)
    total = w.sum()
    a = np.einsum("f,fk->k", w, cross[:, 0])
    b = np.einsum("f,fk->k", w, cross[:, 1])
    mask = (a != 0) | (b != 0)
    if total <= 0 or not mask.any():
        return np.nan, 0.0
    tau, r = gcc_peak_reference(a, b, mask, omega, scan_tau, scan_cos, scan_sin, tau_max,
                                n_newton)
    return tau, max(r / total, 0.0)


@njit(cache=True)
def binaural_kernel(spec_l, spec_r, omega, diffuse, in_band, band_of_bin, scan_tau, scan_cos,
                    scan_sin, tau_max, state, initialised, params, out, out_cross):
    """Features of F frames, written into ``out`` (and ``out_cross``).

    Sequential over frames: the noise floor and the smoothed spectra are recursive.

    Parameters
    ----------
    spec_l, spec_r : complex128 (F, B)
        Windowed spectra of the left / right channel (B rfft bins).
    omega : float64 (B,)
        Bin angular frequencies, rad/s.
    diffuse : float64 (B,)
        Coherence of a diffuse field between the ears per bin (free field:
        sinc(omega * spacing / c)), for the coherent-to-diffuse ratio.
    in_band : bool (B,)
        Bins between the minimum and maximum frequency.
    band_of_bin : int64 (B,)
        ILD band index per bin, -1 outside all bands (J bands).
    scan_tau : float64 (K,)
        Coarse scan lags, s.
    scan_cos, scan_sin : float64 (K, B)
        cos / sin(omega * scan_tau).
    tau_max : float
        Largest lag searched, s.
    state : float64 (N_STATE, B)
        [psd, noise, S_ll, S_rr, Re S_lr, Im S_lr, Re M, Im M, Q, (tau2, age)], updated in
        place (M: precedence memory of the weighted PHAT cross-spectra; Q: the precedence
        hold, the weight of each bin's strongest recent evidence, decayed; row 9: the last
        frame's ITD away from the memory, s, and the frames since it, in its first two
        entries).
    initialised : int64 (1,)
        0 until the first frame was seen.
    params : float64 (N_PARAMS,)
        See the ``P_*`` indices.
    out : float64 (F, 7 + J)
        itd, reliability, ild, activity, direct_path, snr_db, n_bins, ILD per band
        (the ``OUT_*`` indices).
    out_cross : float64 (F, 2, B) or (0, 2, B)
        When it has F rows: each frame's weighted PHAT cross-spectrum (Re, Im)
        normalised by its weight sum, for pooling frames (:func:`pooled_kernel`).
    """
    n_frames, n_bins = spec_l.shape
    n_bands = out.shape[1] - OUT_BANDS
    psd_alpha = params[P_PSD_ALPHA]
    rise = params[P_RISE]
    thr = params[P_BIN_THR]
    act_mid = params[P_ACT_MID]
    act_slope = params[P_ACT_SLOPE]
    coh_alpha = params[P_COH_ALPHA]
    coh_exp = params[P_COH_EXP]
    onset_db = params[P_ONSET_DB]
    mode = int(params[P_MODE])
    n_newton = int(params[P_NEWTON])
    cdr_exp = params[P_CDR_EXP]
    memory = params[P_MEMORY]
    gate = params[P_GATE]
    gate_direct = params[P_GATE_DIRECT]
    alone_power = params[P_ALONE_POWER]
    hold = params[P_HOLD]
    new_separation = params[P_NEW_SEPARATION]
    new_agree = params[P_NEW_AGREE]
    new_window = params[P_NEW_WINDOW]
    new_snr = params[P_NEW_SNR]
    snr_weight = params[P_SNR_WEIGHT]
    snr_weight_itd = params[P_SNR_WEIGHT_ITD]
    onset_bins = int(params[P_ONSET_BINS])
    gate_separation = params[P_GATE_SEPARATION]
    keep_cross = out_cross.shape[0] == n_frames

    a = np.zeros(n_bins)
    b = np.zeros(n_bins)
    fa = np.zeros(n_bins)  # the frame's PHAT terms with the weights but the onset factor
    fb = np.zeros(n_bins)
    ea = np.zeros(n_bins)  # the memory's evidence: the weights with the band onset
    eb = np.zeros(n_bins)
    ma = np.zeros(n_bins)  # the memory, for its peak in a frame that may be a new talker's
    mb = np.zeros(n_bins)
    mmask = np.zeros(n_bins, dtype=np.bool_)
    mask = np.zeros(n_bins, dtype=np.bool_)
    frame_mask = np.zeros(n_bins, dtype=np.bool_)
    pl = np.zeros(n_bins)
    pr = np.zeros(n_bins)
    sw = np.ones(n_bins)  # the ITD objective's SNR weight per bin (P_SNR_WEIGHT_ITD)
    cum_p = np.zeros(n_bins + 1)  # prefix sums of the frame's power and the smoothed past
    cum_prev = np.zeros(n_bins + 1)
    band_l = np.zeros(n_bands)
    band_r = np.zeros(n_bands)
    band_l_all = np.zeros(n_bands)
    band_r_all = np.zeros(n_bands)

    for f in range(n_frames):
        sig = 0.0
        noi = 0.0
        band_onset = onset_bins > 0 and initialised[0] != 0 and (
            mode == 2 or mode == 3 or mode == 5)
        if band_onset:
            for k in range(n_bins):
                x = spec_l[f, k]
                y = spec_r[f, k]
                cum_p[k + 1] = cum_p[k] + 0.5 * (x.real * x.real + x.imag * x.imag
                                                 + y.real * y.real + y.imag * y.imag)
                cum_prev[k + 1] = cum_prev[k] + state[0, k]
        for k in range(n_bins):
            lr = spec_l[f, k].real
            li = spec_l[f, k].imag
            rr = spec_r[f, k].real
            ri = spec_r[f, k].imag
            pl[k] = lr * lr + li * li
            pr[k] = rr * rr + ri * ri
            p = 0.5 * (pl[k] + pr[k])
            cre = lr * rr + li * ri  # L * conj(R)
            cim = li * rr - lr * ri
            if initialised[0] == 0:
                prev = p
                state[0, k] = p
                state[1, k] = p
                state[2, k] = pl[k]
                state[3, k] = pr[k]
                state[4, k] = cre
                state[5, k] = cim
            else:
                prev = state[0, k]
                state[0, k] = psd_alpha * state[0, k] + (1.0 - psd_alpha) * p
                raised = state[1, k] * rise
                state[1, k] = state[0, k] if state[0, k] < raised else raised
                state[2, k] = coh_alpha * state[2, k] + (1.0 - coh_alpha) * pl[k]
                state[3, k] = coh_alpha * state[3, k] + (1.0 - coh_alpha) * pr[k]
                state[4, k] = coh_alpha * state[4, k] + (1.0 - coh_alpha) * cre
                state[5, k] = coh_alpha * state[5, k] + (1.0 - coh_alpha) * cim
            noise = state[1, k]
            mask[k] = False
            a[k] = 0.0
            b[k] = 0.0
            fa[k] = 0.0
            fb[k] = 0.0
            ea[k] = 0.0
            eb[k] = 0.0
            sw[k] = 1.0
            if not in_band[k]:
                continue
            sig += p
            noi += noise
            if p <= noise * thr or p <= EPS:
                continue
            mask[k] = True
            w = 1.0
            if snr_weight > 0.0:
                den = noise * thr
                ratio = p / (den if den > EPS else EPS)
                if ratio > 1.0:
                    w = ratio ** (-snr_weight)
            if snr_weight_itd > 0.0:
                den = noise * thr
                ratio = p / (den if den > EPS else EPS)
                if ratio > 1.0:
                    sw[k] = ratio ** (-snr_weight_itd)
            if mode == 1 or mode == 3:
                msc = (state[4, k] * state[4, k] + state[5, k] * state[5, k]) / (
                    state[2, k] * state[3, k] + EPS)
                if msc > 1.0:
                    msc = 1.0
                w *= msc ** coh_exp
            if mode == 4 or mode == 5:
                w *= direct_to_total(state[2, k], state[3, k], state[4, k], state[5, k],
                                     diffuse[k]) ** cdr_exp
            mag = math.sqrt(cre * cre + cim * cim)
            if mag > EPS:
                fa[k] = w * cre / mag
                fb[k] = w * cim / mag
            w_band = w
            if mode == 2 or mode == 3 or mode == 5:
                onset = 10.0 * math.log10((p + EPS) / (prev + EPS)) / onset_db
                if onset < 0.0:
                    onset = 0.0
                elif onset > 1.0:
                    onset = 1.0
                if band_onset:
                    lo = k - onset_bins if k > onset_bins else 0
                    hi = k + onset_bins + 1 if k + onset_bins + 1 < n_bins else n_bins
                    ob = 10.0 * math.log10((cum_p[hi] - cum_p[lo] + EPS)
                                           / (cum_prev[hi] - cum_prev[lo] + EPS)) / onset_db
                    if ob < 0.0:
                        ob = 0.0
                    elif ob > 1.0:
                        ob = 1.0
                    w_band = w * ob
                else:
                    w_band = w * onset
                w *= onset
            if mag > EPS:
                a[k] = w * cre / mag
                b[k] = w * cim / mag
                ea[k] = w_band * cre / mag
                eb[k] = w_band * cim / mag
        initialised[0] = 1

        # activity from the frame SNR over the adaptive floor
        snr_db = 10.0 * math.log10((sig + EPS) / (noi + EPS))
        out[f, OUT_SNR] = snr_db
        if sig < SILENCE:
            out[f, OUT_ACTIVITY] = 0.0
        else:
            out[f, OUT_ACTIVITY] = 1.0 / (1.0 + math.exp(-(snr_db - act_mid) / act_slope))

        # weights of the GCC
        wsum = 0.0
        n_mask = 0
        for k in range(n_bins):
            if mask[k]:
                n_mask += 1
                wsum += math.sqrt(a[k] * a[k] + b[k] * b[k])
        out[f, OUT_NBINS] = n_mask
        for k in range(n_bins):
            frame_mask[k] = mask[k]
        if n_mask > 0:
            out[f, OUT_DIRECT] = wsum / n_mask
        else:
            out[f, OUT_DIRECT] = 0.0

        if keep_cross:
            for k in range(n_bins):
                out_cross[f, 0, k] = a[k] / wsum if wsum > 1e-12 else 0.0
                out_cross[f, 1, k] = b[k] / wsum if wsum > 1e-12 else 0.0
        done = False
        have_m = False  # the memory's peak (tau_m, r_m) of this frame, once computed
        tau_m = 0.0
        r_m = 0.0
        state[9, 1] += 1.0
        if memory > 0.0:
            # precedence memory: a bin's direct-path evidence replaces its memory, which
            # otherwise decays by `memory` per frame
            # evidence; with the hold, only by the part of its weight above the (decayed)
            # weight of the bin's strongest recent evidence: the first wavefront of an onset
            # is not overwritten by the later frames of the same onset
            msum = 0.0
            for k in range(n_bins):
                wk = math.sqrt(ea[k] * ea[k] + eb[k] * eb[k])
                ua = ea[k]
                ub = eb[k]
                if hold > 0.0:
                    held = hold * state[8, k]
                    if wk > held:
                        s = (wk - held) / wk
                        ua *= s
                        ub *= s
                        state[8, k] = wk
                    else:
                        ua = 0.0
                        ub = 0.0
                        state[8, k] = held
                keep = memory * (1.0 - math.sqrt(ua * ua + ub * ub))
                state[6, k] = keep * state[6, k] + sw[k] * ua
                state[7, k] = keep * state[7, k] + sw[k] * ub
                msum += math.sqrt(state[6, k] * state[6, k] + state[7, k] * state[7, k])
            # a frame whose own GCC-PHAT (weights without the onset factor) is coherent is
            # read alone; the memory's peak is the ITD of the others
            fsum = 0.0
            for k in range(n_bins):
                if mask[k]:
                    fsum += math.sqrt(fa[k] * fa[k] + fb[k] * fb[k])
            if fsum > 1e-12 and fsum >= gate_direct * n_mask:
                tau, r = gcc_peak(fa, fb, mask, omega, scan_tau, scan_cos, scan_sin, tau_max,
                                  n_newton)
                alone = r >= gate * fsum
                second = False
                check_gated = alone and gate_separation > 0.0
                if (not alone or check_gated) and new_window > 0.0 and gate <= 1.0:
                    # a second talker: the frame's own peak far from the memory's, read
                    # alone when an earlier such frame (within new_window frames) read the
                    # same ITD (within new_agree); reflections scatter, a talker recurs.
                    # A frame that passed the gate is held to it too when its peak lies
                    # gate_separation or more from a memory's
                    for k in range(n_bins):
                        ma[k] = state[6, k]
                        mb[k] = state[7, k]
                        mmask[k] = ma[k] != 0.0 or mb[k] != 0.0
                    tau_m, r_m = gcc_peak(ma, mb, mmask, omega, scan_tau, scan_cos, scan_sin,
                                          tau_max, n_newton)
                    have_m = True
                    if check_gated:  # between the memory and the front (ITD 0, within the
                        # separation): where the diffuse noise and the reflections pull
                        candidate = (r_m > 0.0 and abs(tau - tau_m) >= gate_separation
                                     and abs(tau) < abs(tau_m)
                                     and tau * tau_m > -gate_separation * abs(tau_m))
                    else:
                        candidate = r_m <= 0.0 or abs(tau - tau_m) >= new_separation
                    if candidate:
                        alone = (state[9, 1] <= new_window
                                 and abs(tau - state[9, 0]) <= new_agree
                                 and snr_db >= new_snr)
                        second = alone and not check_gated
                        state[9, 0] = tau
                        state[9, 1] = 0.0
                if alone:
                    # read alone, with the bins' weights sharpened (the most direct bins)
                    done = True
                    rel = r / fsum
                    out[f, OUT_RELIABILITY] = rel if rel > 0.0 else 0.0
                    gsum = 0.0
                    for k in range(n_bins):
                        wk = math.sqrt(fa[k] * fa[k] + fb[k] * fb[k])
                        g = wk ** (alone_power - 1.0) * sw[k] if wk > 0.0 else 0.0
                        fa[k] *= g
                        fb[k] *= g
                        if mask[k]:
                            gsum += wk * g
                    if gsum > 1e-12:
                        tau, r = gcc_peak(fa, fb, mask, omega, scan_tau, scan_cos, scan_sin,
                                          tau_max, n_newton)
                    else:
                        gsum = 1.0
                    out[f, OUT_ITD] = tau
                    if keep_cross and not second:  # a second talker's: onset-weighted
                        for k in range(n_bins):
                            out_cross[f, 0, k] = fa[k] / gsum
                            out_cross[f, 1, k] = fb[k] / gsum
            if not done:
                for k in range(n_bins):
                    a[k] = state[6, k]
                    b[k] = state[7, k]
                    mask[k] = a[k] != 0.0 or b[k] != 0.0
                if n_mask > 0:
                    wsum = msum
        if memory <= 0.0 and snr_weight_itd > 0.0 and wsum > 1e-12:
            wsum = 0.0
            for k in range(n_bins):
                a[k] *= sw[k]
                b[k] *= sw[k]
                if mask[k]:
                    wsum += math.sqrt(a[k] * a[k] + b[k] * b[k])
        if done:
            pass
        elif wsum <= 1e-12:
            out[f, OUT_ITD] = np.nan
            out[f, OUT_RELIABILITY] = 0.0
        else:
            if have_m:  # the memory's peak, computed for the second talker
                tau, r = tau_m, r_m
            else:
                tau, r = gcc_peak(a, b, mask, omega, scan_tau, scan_cos, scan_sin, tau_max,
                                  n_newton)
            out[f, OUT_ITD] = tau
            rel = r / wsum
            out[f, OUT_RELIABILITY] = rel if rel > 0.0 else 0.0

        # ILD per band (masked bins, or all bins of the band when none passes)
        for j in range(n_bands):
            band_l[j] = 0.0
            band_r[j] = 0.0
            band_l_all[j] = 0.0
            band_r_all[j] = 0.0
        tot_l = 0.0
        tot_r = 0.0
        tot_l_all = 0.0
        tot_r_all = 0.0
        for k in range(n_bins):
            if not in_band[k]:
                continue
            tot_l_all += pl[k]
            tot_r_all += pr[k]
            if frame_mask[k]:
                tot_l += pl[k]
                tot_r += pr[k]
            j = band_of_bin[k]
            if j >= 0:
                band_l_all[j] += pl[k]
                band_r_all[j] += pr[k]
                if frame_mask[k]:
                    band_l[j] += pl[k]
                    band_r[j] += pr[k]
        if tot_l + tot_r > 0.0:
            out[f, OUT_ILD] = 10.0 * math.log10((tot_l + EPS) / (tot_r + EPS))
        else:
            out[f, OUT_ILD] = 10.0 * math.log10((tot_l_all + EPS) / (tot_r_all + EPS))
        for j in range(n_bands):
            if band_l[j] + band_r[j] > 0.0:
                out[f, OUT_BANDS + j] = 10.0 * math.log10((band_l[j] + EPS) / (band_r[j] + EPS))
            else:
                out[f, OUT_BANDS + j] = 10.0 * math.log10(
                    (band_l_all[j] + EPS) / (band_r_all[j] + EPS))


def binaural_reference(spec_l, spec_r, omega, diffuse, in_band, band_of_bin, scan_tau,
                       scan_cos, scan_sin, tau_max, state, initialised, params, out, out_cross):
    """Plain-numpy reference of :func:`binaural_kernel` (same arguments, same outputs)."""
    n_bands = out.shape[1] - OUT_BANDS
    psd_alpha, rise, thr, act_mid, act_slope, coh_alpha, coh_exp, onset_db = params[:8]
    mode = int(params[P_MODE])
    n_newton = int(params[P_NEWTON])
    for f in range(spec_l.shape[0]):
        L = spec_l[f]
        R = spec_r[f]
        pl = np.abs(L) ** 2
        pr = np.abs(R) ** 2
        p = 0.5 * (pl + pr)
        cross = L * np.conj(R)
        band_onset = False
        if initialised[0] == 0:
            prev = p.copy()
            state[:6] = np.stack([p, p, pl, pr, cross.real, cross.imag])
            initialised[0] = 1
        else:
            prev = state[0].copy()
            h = int(params[P_ONSET_BINS])
            if h > 0:
                band_onset = True
                kernel = np.ones(2 * h + 1)
                p_band = np.convolve(p, kernel)[h:h + len(p)]
                prev_band = np.convolve(prev, kernel)[h:h + len(p)]
            state[0] = psd_alpha * state[0] + (1 - psd_alpha) * p
            state[1] = np.minimum(state[0], state[1] * rise)
            state[2:4] = coh_alpha * state[2:4] + (1 - coh_alpha) * np.stack([pl, pr])
            state[4:6] = coh_alpha * state[4:6] + (1 - coh_alpha) * np.stack(
                [cross.real, cross.imag])
        noise = state[1]
        sig = p[in_band].sum()
        noi = noise[in_band].sum()
        snr_db = 10 * np.log10((sig + EPS) / (noi + EPS))
        out[f, OUT_SNR] = snr_db
        activity = 1 / (1 + np.exp(-(snr_db - act_mid) / act_slope))
        out[f, OUT_ACTIVITY] = 0.0 if sig < SILENCE else activity
        mask = in_band & (p > noise * thr) & (p > EPS)
        w = np.ones_like(p)
        if params[P_SNR_WEIGHT] > 0:
            ratio = np.maximum(p / np.maximum(noise * thr, EPS), 1.0)
            w = ratio ** (-params[P_SNR_WEIGHT])
        sw = np.ones_like(p)
        if params[P_SNR_WEIGHT_ITD] > 0:
            ratio = np.maximum(p / np.maximum(noise * thr, EPS), 1.0)
            sw = np.where(mask, ratio ** (-params[P_SNR_WEIGHT_ITD]), 1.0)
        if mode in (1, 3):
            msc = (state[4] ** 2 + state[5] ** 2) / (state[2] * state[3] + EPS)
            w = w * np.minimum(msc, 1.0) ** coh_exp
        if mode in (4, 5):
            w = w * direct_to_total_reference(state[2], state[3], state[4], state[5],
                                              diffuse) ** params[P_CDR_EXP]
        mag = np.abs(cross)
        ok = mask & (mag > EPS)
        u_re = np.where(ok, cross.real / np.where(ok, mag, 1), 0.0)
        u_im = np.where(ok, cross.imag / np.where(ok, mag, 1), 0.0)
        fa, fb = w * u_re, w * u_im  # without the onset factor
        w_band = w
        if mode in (2, 3, 5):
            onset = np.clip(10 * np.log10((p + EPS) / (prev + EPS)) / onset_db, 0, 1)
            w_band = w * (np.clip(10 * np.log10((p_band + EPS) / (prev_band + EPS)) / onset_db,
                                  0, 1) if band_onset else onset)
            w = w * onset
        a, b = w * u_re, w * u_im
        ea, eb = w_band * u_re, w_band * u_im  # the memory's evidence
        wsum = np.sqrt(a ** 2 + b ** 2)[mask].sum()
        n_mask = int(mask.sum())
        out[f, OUT_NBINS] = n_mask
        out[f, OUT_DIRECT] = wsum / n_mask if n_mask else 0.0
        keep_cross = out_cross.shape[0] == spec_l.shape[0]
        if keep_cross:
            out_cross[f, 0] = a / wsum if wsum > 1e-12 else 0.0
            out_cross[f, 1] = b / wsum if wsum > 1e-12 else 0.0
        gmask = mask
        done = False
        state[9, 1] += 1.0
        if params[P_MEMORY] > 0:
            ua, ub = ea, eb
            if params[P_HOLD] > 0:
                wk = np.sqrt(ea ** 2 + eb ** 2)
                held = params[P_HOLD] * state[8]
                above = wk > held
                s = np.where(above, (wk - held) / np.where(above, wk, 1.0), 0.0)
                ua, ub = ea * s, eb * s
                state[8] = np.where(above, wk, held)
            keep = params[P_MEMORY] * (1.0 - np.sqrt(ua ** 2 + ub ** 2))
            state[6] = keep * state[6] + sw * ua
            state[7] = keep * state[7] + sw * ub
            fsum = np.sqrt(fa ** 2 + fb ** 2)[mask].sum()
            if fsum > 1e-12 and fsum >= params[P_GATE_DIRECT] * n_mask:
                tau, r = gcc_peak_reference(fa, fb, mask, omega, scan_tau, scan_cos, scan_sin,
                                            tau_max, n_newton)
                alone = r >= params[P_GATE] * fsum
                second = False
                check_gated = alone and params[P_GATE_SEPARATION] > 0
                if ((not alone or check_gated) and params[P_NEW_WINDOW] > 0
                        and params[P_GATE] <= 1.0):
                    mmask = (state[6] != 0) | (state[7] != 0)
                    tau_m, r_m = gcc_peak_reference(state[6], state[7], mmask, omega, scan_tau,
                                                    scan_cos, scan_sin, tau_max, n_newton)
                    if check_gated:  # between the memory and the front (ITD 0, within the
                        # separation): where the diffuse noise and the reflections pull
                        sep = params[P_GATE_SEPARATION]
                        candidate = bool(r_m > 0.0 and abs(tau - tau_m) >= sep
                                         and abs(tau) < abs(tau_m)
                                         and tau * tau_m > -sep * abs(tau_m))
                    else:
                        candidate = r_m <= 0.0 or abs(tau - tau_m) >= params[P_NEW_SEPARATION]
                    if candidate:
                        alone = bool(state[9, 1] <= params[P_NEW_WINDOW]
                                     and abs(tau - state[9, 0]) <= params[P_NEW_AGREE]
                                     and snr_db >= params[P_NEW_SNR])
                        second = alone and not check_gated
                        state[9, 0] = tau
                        state[9, 1] = 0.0
                if alone:
                    done = True
                    out[f, OUT_RELIABILITY] = max(r / fsum, 0.0)
                    wk = np.sqrt(fa ** 2 + fb ** 2)
                    g = np.where(wk > 0, wk ** (params[P_ALONE_POWER] - 1.0) * sw, 0.0)
                    ga, gb = fa * g, fb * g
                    gsum = (wk * g)[mask].sum()
                    if gsum > 1e-12:
                        tau, r = gcc_peak_reference(ga, gb, mask, omega, scan_tau, scan_cos,
                                                    scan_sin, tau_max, n_newton)
                    else:
                        gsum = 1.0
                    out[f, OUT_ITD] = tau
                    if keep_cross and not second:
                        out_cross[f, 0] = ga / gsum
                        out_cross[f, 1] = gb / gsum
            if not done:
                a, b = state[6].copy(), state[7].copy()
                gmask = (a != 0) | (b != 0)
                if n_mask:
                    wsum = np.sqrt(a ** 2 + b ** 2).sum()
        if params[P_MEMORY] <= 0 and params[P_SNR_WEIGHT_ITD] > 0 and wsum > 1e-12:
            a, b = a * sw, b * sw
            wsum = np.sqrt(a ** 2 + b ** 2)[mask].sum()
        if done:
            pass
        elif wsum <= 1e-12:
            out[f, OUT_ITD] = np.nan
            out[f, OUT_RELIABILITY] = 0.0
        else:
            tau, r = gcc_peak_reference(a, b, gmask, omega, scan_tau, scan_cos, scan_sin,
                                        tau_max, n_newton)
            out[f, OUT_ITD] = tau
            out[f, OUT_RELIABILITY] = max(r / wsum, 0.0)
        sel = mask if mask.any() else in_band
        out[f, OUT_ILD] = 10 * np.log10((pl[sel].sum() + EPS) / (pr[sel].sum() + EPS))
        for j in range(n_bands):
            inb = band_of_bin == j
            sel = inb & mask
            if not sel.any():
                sel = inb & in_band
            out[f, OUT_BANDS + j] = 10 * np.log10((pl[sel].sum() + EPS) / (pr[sel].sum() + EPS))
