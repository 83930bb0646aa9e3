/* One layer of current-based LIF neurons over all time steps: the inner loop of
 * neuromodels.spiking.network.run_network_numpy, compiled. Same operations in the same order, so float64 and
 * float32 results equal the NumPy loop bit for bit (compiled with -ffp-contract=off: no fused multiply-add).
 * Order per step (Brian2's schedule): record v; state update (v' = a_vv v + a_vi I + b_v, I' = a_ii I; v held
 * while refractory); threshold; synaptic input I += jumps[n]; reset of the neurons that fired. */
#include <stdint.h>

#define LIF_LAYER(NAME, REAL)                                                                                   \
void NAME(int64_t n_steps, int64_t n_units, const REAL *jumps, REAL *v, REAL *current, REAL a_vv, REAL a_vi,   \
          REAL a_ii, REAL b_v, REAL threshold, REAL reset, int64_t ref_steps, int64_t *since_spike,              \
          uint8_t *spikes, REAL *voltage, REAL *membrane)                                                        \
{                                                                                                               \
    for (int64_t n = 0; n < n_steps; n++) {                                                                     \
        const int64_t row = n * n_units;                                                                        \
        for (int64_t k = 0; k < n_units; k++) {                                                                 \
            if (voltage) voltage[row + k] = v[k];                                                               \
            REAL v_new = v[k] * a_vv;                                                                           \
            v_new = v_new + current[k] * a_vi;                                                                  \
            v_new = v_new + b_v;                                                                                \
            current[k] = current[k] * a_ii;                                                                     \
            int free_to_fire = 1;                                                                               \
            if (ref_steps) {                                                                                    \
                since_spike[k] += 1;                                                                            \
                free_to_fire = since_spike[k] >= ref_steps;                                                     \
                if (free_to_fire) v[k] = v_new;                                                                 \
            } else {                                                                                            \
                v[k] = v_new;                                                                                   \
            }                                                                                                   \
            if (membrane) membrane[row + k] = v[k];                                                             \
            const int fired = (v[k] > threshold) && free_to_fire;                                               \
            current[k] = current[k] + jumps[row + k];                                                           \
            if (fired) {                                                                                        \
                v[k] = reset;                                                                                   \
                if (ref_steps) since_spike[k] = 0;                                                              \
            }                                                                                                   \
            spikes[row + k] = (uint8_t)fired;                                                                   \
        }                                                                                                       \
    }                                                                                                           \
}

LIF_LAYER(lif_layer_f64, double)
LIF_LAYER(lif_layer_f32, float)
