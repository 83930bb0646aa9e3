/* Synaptic Intelligence's per-step bookkeeping in one pass over each parameter tensor (fitting/continual/si.py).
 *
 * Compiled with -ffp-contract=off (no fused multiply-add), so each line is the IEEE operation the torch code of
 * si.py performs, in the same order. The penalty's value is a sum in another order than torch.dot's (16 partial
 * sums over blocks of 1024 elements in the tensor's precision, the blocks' sums in double), so that value agrees
 * to rounding, not bit for bit; it is only reported, the gradient does not use it. Every pointer is restrict: the
 * caller passes distinct buffers (si.py's _compiled checks it), so the loops vectorise without alias checks.
 *
 * si_penalty: sum_k w_k (t_k - a_k)^2                                  (the value of the quadratic surrogate)
 * si_fold:    g_k = grad_k; grad_k = grad_k + (w_k (t_k - a_k)) * f   (f = 2 c, or c with half: its gradient)
 * si_path:    omega_k = omega_k + g_k (prev_k - t_k); prev_k = t_k     (omega += -g * delta; prev: the weights)
 * si_path_penalty: si_path, and the penalty's value at the new weights (for the next step) in the same pass
 * si_step:    fit's one pass per step after the data loss's backward (si.py's folded mode): the last step's
 *             deferred si_path (if pending: its g and the weights before it are still in g and prev), then
 *             prev_k = t_k (the weights before this step), then si_fold with si_penalty's value (if fold), else
 *             g_k = grad_k. 11 memory streams, where si_fold and then si_path_penalty after the step are 14.
 */
#include <stdint.h>

#define SI_LANES 16   /* independent partial sums of the penalty value, so that the loop vectorises */
#define SI_BLOCK 1024 /* elements summed in the tensor's precision before the partial sums go into a double */

/* The blocked sum shared by the kernels that return the penalty's value: ELEMENT(k, PART) does element k's work
 * and adds its term to PART (a REAL partial sum in the blocks, the double total for the tail). */
#define SI_BLOCKED(ELEMENT)                                                                                    \
    {                                                                                                          \
        int64_t k = 0;                                                                                         \
        while (k + SI_LANES <= n) {                                                                            \
            REAL part[SI_LANES] = {0};                                                                         \
            int64_t end = k + SI_BLOCK <= n ? k + SI_BLOCK : n - (n - k) % SI_LANES;                           \
            for (; k < end; k += SI_LANES) {                                                                   \
                for (int j = 0; j < SI_LANES; j++) ELEMENT(k + j, part[j], REAL);                              \
            }                                                                                                  \
            for (int j = 0; j < SI_LANES; j++) total += (double)part[j];                                       \
        }                                                                                                      \
        for (; k < n; k++) ELEMENT(k, total, double);                                                          \
    }

/* The penalty's term w (t - a)^2 of element k, as (w * d) * d in the type SUM (the tail sums in double). */
#define SI_TERM(k, PART, SUM)                                                                                  \
    do {                                                                                                       \
        SUM d_ = (SUM)t[k] - (SUM)a[k];                                                                        \
        PART += (SUM)w[k] * d_ * d_;                                                                           \
    } while (0)

/* si_path's element k; with the penalty, then the term at the new weights. */
#define SI_PATH(k)                                                                                             \
    do {                                                                                                       \
        REAL tk = t[k];                                                                                        \
        REAL b = prev[k] - tk;                                                                                 \
        omega[k] = omega[k] + g[k] * b;                                                                        \
        prev[k] = tk;                                                                                          \
    } while (0)
#define SI_PATH_PENALTY(k, PART, SUM)                                                                          \
    do {                                                                                                       \
        SI_PATH(k);                                                                                            \
        SI_TERM(k, PART, SUM);                                                                                 \
    } while (0)

/* si_step's element k; PENDING and FOLD are constants in each of the four loops si_step dispatches to. */
#define SI_STEP_ELEMENT(k, PART, SUM, PENDING, FOLD)                                                           \
    do {                                                                                                       \
        REAL tk = t[k];                                                                                        \
        if (PENDING) {                                                                                         \
            REAL b = prev[k] - tk;                                                                             \
            omega[k] = omega[k] + g[k] * b;                                                                    \
        }                                                                                                      \
        prev[k] = tk;                                                                                          \
        REAL gk = grad[k];                                                                                     \
        g[k] = gk;                                                                                             \
        if (FOLD) {                                                                                            \
            REAL d = tk - a[k];                                                                                \
            REAL wd = w[k] * d;                                                                                \
            grad[k] = gk + wd * f;                                                                             \
            SI_TERM(k, PART, SUM);                                                                             \
        }                                                                                                      \
    } while (0)
#define SI_STEP_11(k, PART, SUM) SI_STEP_ELEMENT(k, PART, SUM, 1, 1)
#define SI_STEP_10(k, PART, SUM) SI_STEP_ELEMENT(k, PART, SUM, 1, 0)
#define SI_STEP_01(k, PART, SUM) SI_STEP_ELEMENT(k, PART, SUM, 0, 1)
#define SI_STEP_00(k, PART, SUM) SI_STEP_ELEMENT(k, PART, SUM, 0, 0)

#define SI_KERNELS(SUFFIX)                                                                                     \
    double si_penalty_##SUFFIX(int64_t n, const REAL *restrict t, const REAL *restrict a,                      \
                               const REAL *restrict w) {                                                       \
        double total = 0.0;                                                                                    \
        SI_BLOCKED(SI_TERM)                                                                                    \
        return total;                                                                                          \
    }                                                                                                          \
    void si_fold_##SUFFIX(int64_t n, REAL *restrict grad, REAL *restrict g, const REAL *restrict t,            \
                          const REAL *restrict a, const REAL *restrict w, REAL f) {                            \
        for (int64_t k = 0; k < n; k++) {                                                                      \
            REAL gk = grad[k];                                                                                 \
            REAL d = t[k] - a[k];                                                                              \
            REAL wd = w[k] * d;                                                                                \
            g[k] = gk;                                                                                         \
            grad[k] = gk + wd * f;                                                                             \
        }                                                                                                      \
    }                                                                                                          \
    void si_path_##SUFFIX(int64_t n, REAL *restrict omega, const REAL *restrict g, const REAL *restrict t,     \
                          REAL *restrict prev) {                                                               \
        for (int64_t k = 0; k < n; k++) SI_PATH(k);                                                            \
    }                                                                                                          \
    double si_path_penalty_##SUFFIX(int64_t n, REAL *restrict omega, const REAL *restrict g,                   \
                                    const REAL *restrict t, REAL *restrict prev, const REAL *restrict a,       \
                                    const REAL *restrict w) {                                                  \
        double total = 0.0;                                                                                    \
        SI_BLOCKED(SI_PATH_PENALTY)                                                                            \
        return total;                                                                                          \
    }                                                                                                          \
    double si_step_##SUFFIX(int64_t n, REAL *restrict omega, REAL *restrict g, REAL *restrict prev,            \
                            const REAL *restrict t, REAL *restrict grad, const REAL *restrict a,               \
                            const REAL *restrict w, REAL f, int pending, int fold) {                           \
        double total = 0.0;                                                                                    \
        if (pending && fold) SI_BLOCKED(SI_STEP_11)                                                            \
        else if (pending) SI_BLOCKED(SI_STEP_10)                                                               \
        else if (fold) SI_BLOCKED(SI_STEP_01)                                                                  \
        else SI_BLOCKED(SI_STEP_00)                                                                            \
        return total;                                                                                          \
    }

#define REAL float
SI_KERNELS(f32)
#undef REAL
#define REAL double
SI_KERNELS(f64)
#undef REAL
