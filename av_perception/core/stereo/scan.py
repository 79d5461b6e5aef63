"""The epipolar scan of stereo region matching: every integer disparity of each
template scored along its epipolar line (ZNCC or zero-mean SAD), a numba kernel and
its plain-numpy reference with the same signature."""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def epipolar_scan_kernel(left, right, boxes, d_lo, dy_max, stride, method, scores, best_dy,
                         tstd):
    """Score every integer disparity of each region along its epipolar line.

    Parameters
    ----------
    left, right : float32 or uint8 (H, W), any strides (mirrored views too)
        Rectified grey images (each pixel is read as float64).
    boxes : int64 (M, 4)
        Template regions u0, v0, w, h (inside the left image).
    d_lo : int64 (M,)
        Disparity of column 0 of ``scores`` per region.
    dy_max : int
        Rows searched above and below the epipolar line.
    stride : int64 (M,)
        Template subsampling step per region (1 = every pixel).
    method : int
        0 ZNCC (higher is better, in [-1, 1]); 1 zero-mean SAD as minus the mean
        absolute difference (higher is better).
    scores : float64 (M, D)  out
        Best score over the rows for disparity d_lo + k; NaN where the candidate
        leaves the right image.
    best_dy : int64 (M, D)  out
        Row offset of that best score.
    tstd : float64 (M,)  out
        Standard deviation of the (subsampled) template, grey levels.
    """
    height, width = left.shape
    n_d = scores.shape[1]
    for m in range(boxes.shape[0]):
        u0 = boxes[m, 0]
        v0 = boxes[m, 1]
        w = boxes[m, 2]
        h = boxes[m, 3]
        st = stride[m]
        n = 0
        s = 0.0
        ss = 0.0
        for i in range(0, h, st):
            for j in range(0, w, st):
                t = np.float64(left[v0 + i, u0 + j])
                s += t
                ss += t * t
                n += 1
        mt = s / n
        var_t = ss / n - mt * mt
        if var_t < 0.0:
            var_t = 0.0
        tstd[m] = math.sqrt(var_t)
        # the zero-mean template once (the same float64 values as read per candidate)
        tz = np.empty(n)
        q = 0
        for i in range(0, h, st):
            for j in range(0, w, st):
                tz[q] = np.float64(left[v0 + i, u0 + j]) - mt
                q += 1
        for k in range(n_d):
            d = d_lo[m] + k
            uc = u0 - d
            scores[m, k] = np.nan
            best_dy[m, k] = 0
            if uc < 0 or uc + w > width:
                continue
            found = False
            best = 0.0
            for dy in range(-dy_max, dy_max + 1):
                vc = v0 + dy
                if vc < 0 or vc + h > height:
                    continue
                if method == 0:
                    sc = 0.0
                    scc = 0.0
                    stc = 0.0
                    q = 0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            c = np.float64(right[vc + i, uc + j])
                            sc += c
                            scc += c * c
                            stc += tz[q] * c
                            q += 1
                    mc = sc / n
                    var_c = scc / n - mc * mc
                    den = math.sqrt(var_t * var_c) * n if var_c > 0.0 else 0.0
                    val = stc / den if den > 1e-12 else 0.0
                else:
                    sc = 0.0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            sc += np.float64(right[vc + i, uc + j])
                    mc = sc / n
                    sad = 0.0
                    q = 0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            sad += abs(tz[q] - (np.float64(right[vc + i, uc + j]) - mc))
                            q += 1
                    val = -sad / n
                if not found or val > best:
                    best = val
                    best_dy[m, k] = dy
                    found = True
            if found:
                scores[m, k] = best


def epipolar_scan_reference(left, right, boxes, d_lo, dy_max, stride, method, scores, best_dy,
                            tstd):
    """Plain-numpy reference of :func:`epipolar_scan_kernel` (same arguments, same outputs)."""
    height, width = left.shape
    n_d = scores.shape[1]
    for m in range(boxes.shape[0]):
        u0, v0, w, h = (int(x) for x in boxes[m])
        st = int(stride[m])
        t = left[v0:v0 + h:st, u0:u0 + w:st].astype(np.float64)
        tz = t - t.mean()
        var_t = max(float(np.mean(t * t) - t.mean() ** 2), 0.0)
        tstd[m] = math.sqrt(var_t)
        scores[m] = np.nan
        best_dy[m] = 0
        for k in range(n_d):
            uc = u0 - int(d_lo[m]) - k
            if uc < 0 or uc + w > width:
                continue
            vals = []
            for dy in range(-dy_max, dy_max + 1):
                vc = v0 + dy
                if vc < 0 or vc + h > height:
                    continue
                c = right[vc:vc + h:st, uc:uc + w:st].astype(np.float64)
                if method == 0:
                    var_c = float(np.mean(c * c) - c.mean() ** 2)
                    den = math.sqrt(var_t * var_c) * c.size if var_c > 0 else 0.0
                    vals.append((float(np.sum(tz * c)) / den if den > 1e-12 else 0.0, dy))
                else:
                    vals.append((-float(np.mean(np.abs(tz - (c - c.mean())))), dy))
            if vals:
                j = int(np.argmax([x[0] for x in vals]))
                scores[m, k], best_dy[m, k] = vals[j]
