/* Synaptic Intelligence's per-step bookkeeping in one pass over each parameter tensor (fitting/continual/si.py).
 *
 * Compiled with -ffp-contract=off (no fused multiply-add), so each line is the IEEE operation the torch code of
 * si.py performs, in the same order. The penalty's value is a sum in another order than torch.dot's (16 partial
 * sums over blocks of 1024 elements in the tensor's precision, the blocks' sums in double), so that value agrees
 * to rounding, not bit for bit; it is only reported, the gradient does not use it.
 *
 * si_penalty: sum_k w_k (t_k - a_k)^2                                  (the value of the quadratic surrogate)
 * si_fold:    g_k = grad_k; grad_k = grad_k + (w_k (t_k - a_k)) * f   (f = 2 c, or c with half: its gradient)
 * si_path:    omega_k = omega_k + g_k (prev_k - t_k); prev_k = t_k     (omega += -g * delta; prev: the weights)
 * si_path_penalty: si_path, and the penalty's value at the new weights (for the next step) in the same pass
 */
#include <stdint.h>

#define SI_LANES 16  /* independent partial sums of the penalty value, so that the loop vectorises */
#define SI_BLOCK 1024 /* elements summed in the tensor's precision before the partial sums go into a double */

#define SI_KERNELS(REAL, SUFFIX)                                                                                  \
    double si_penalty_##SUFFIX(int64_t n, const REAL *t, const REAL *a, const REAL *w) {                         \
        double total = 0.0;                                                                                      \
        int64_t k = 0;                                                                                           \
        while (k + SI_LANES <= n) {                                                                              \
            REAL part[SI_LANES] = {0};                                                                           \
            int64_t end = k + SI_BLOCK <= n ? k + SI_BLOCK : n - (n - k) % SI_LANES;                             \
            for (; k < end; k += SI_LANES) {                                                                     \
                for (int j = 0; j < SI_LANES; j++) {                                                             \
                    REAL d = t[k + j] - a[k + j];                                                                \
                    part[j] += w[k + j] * d * d;                                                                 \
                }                                                                                                \
            }                                                                                                    \
            for (int j = 0; j < SI_LANES; j++) total += (double)part[j];                                         \
        }                                                                                                        \
        for (; k < n; k++) {                                                                                     \
            double d = (double)t[k] - (double)a[k];                                                              \
            total += (double)w[k] * d * d;                                                                       \
        }                                                                                                        \
        return total;                                                                                            \
    }                                                                                                            \
    void si_fold_##SUFFIX(int64_t n, REAL *grad, REAL *g, const REAL *t, const REAL *a, const REAL *w, REAL f) { \
        for (int64_t k = 0; k < n; k++) {                                                                        \
            REAL gk = grad[k];                                                                                   \
            REAL d = t[k] - a[k];                                                                                \
            REAL wd = w[k] * d;                                                                                  \
            g[k] = gk;                                                                                           \
            grad[k] = gk + wd * f;                                                                               \
        }                                                                                                        \
    }                                                                                                            \
    void si_path_##SUFFIX(int64_t n, REAL *omega, const REAL *g, const REAL *t, REAL *prev) {                    \
        for (int64_t k = 0; k < n; k++) {                                                                        \
            REAL tk = t[k];                                                                                      \
            REAL b = prev[k] - tk;                                                                               \
            omega[k] = omega[k] + g[k] * b;                                                                      \
            prev[k] = tk;                                                                                        \
        }                                                                                                        \
    }                                                                                                            \
    double si_path_penalty_##SUFFIX(int64_t n, REAL *omega, const REAL *g, const REAL *t, REAL *prev,               \
                                    const REAL *a, const REAL *w) {                                              \
        double total = 0.0;                                                                                      \
        int64_t k = 0;                                                                                           \
        while (k + SI_LANES <= n) {                                                                              \
            REAL part[SI_LANES] = {0};                                                                           \
            int64_t end = k + SI_BLOCK <= n ? k + SI_BLOCK : n - (n - k) % SI_LANES;                             \
            for (; k < end; k += SI_LANES) {                                                                     \
                for (int j = 0; j < SI_LANES; j++) {                                                             \
                    REAL tk = t[k + j];                                                                          \
                    REAL b = prev[k + j] - tk;                                                                   \
                    omega[k + j] = omega[k + j] + g[k + j] * b;                                                  \
                    prev[k + j] = tk;                                                                            \
                    REAL d = tk - a[k + j];                                                                      \
                    part[j] += w[k + j] * d * d;                                                                 \
                }                                                                                                \
            }                                                                                                    \
            for (int j = 0; j < SI_LANES; j++) total += (double)part[j];                                         \
        }                                                                                                        \
        for (; k < n; k++) {                                                                                     \
            REAL tk = t[k];                                                                                      \
            REAL b = prev[k] - tk;                                                                               \
            omega[k] = omega[k] + g[k] * b;                                                                      \
            prev[k] = tk;                                                                                        \
            double d = (double)tk - (double)a[k];                                                                \
            total += (double)w[k] * d * d;                                                                       \
        }                                                                                                        \
        return total;                                                                                            \
    }

SI_KERNELS(float, f32)
SI_KERNELS(double, f64)
