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

/* A circuit of LIF populations (neuromodels.spiking.circuit._run, compiled; float64). Per-neuron coefficients;
 * synaptic pathways as CSR tables over global source indices (LIF neurons 0..n-1, then external sources), one per
 * (delay, kind); kind 0 = delta (v += w on arrival unless refractory), 1 = exponential (I += w). Deliveries
 * accumulate in ring buffers ring[(step + delay) % ring_len][target] in the order pathway -> source (fired LIF
 * neurons ascending, then this step's external spikes) -> synapse, as the NumPy loop's np.add.at does. */
void lif_circuit_f64(int64_t n_steps, int64_t n, int64_t n_sources, const double *a_vv, const double *a_vi,
                     const double *a_ii, const double *b_v, const double *threshold, const double *reset,
                     const int64_t *ref_steps, double *v, double *current, int64_t *since_spike,
                     int64_t n_paths, const int64_t *path_delay, const int64_t *path_kind,
                     const int64_t *path_indptr, const int64_t *path_offset, const int64_t *targets,
                     const double *weights, int64_t ring_len, double *ring_delta, double *ring_exp,
                     const int64_t *ext_ptr, const int64_t *ext_idx, int64_t *sources, uint8_t *not_refractory,
                     uint8_t *spikes, double *voltage)
{
    for (int64_t step = 0; step < n_steps; step++) {
        uint8_t *fired = spikes + step * n;
        int64_t n_src = 0;
        for (int64_t k = 0; k < n; k++) {
            if (voltage) voltage[step * n + k] = v[k];
            double v_new = v[k] * a_vv[k];
            v_new = v_new + current[k] * a_vi[k];
            v_new = v_new + b_v[k];
            current[k] = current[k] * a_ii[k];
            since_spike[k] += 1;
            not_refractory[k] = since_spike[k] >= ref_steps[k];
            if (not_refractory[k]) v[k] = v_new;
            fired[k] = (v[k] > threshold[k]) && not_refractory[k];
            if (fired[k]) sources[n_src++] = k;
        }
        for (int64_t e = ext_ptr[step]; e < ext_ptr[step + 1]; e++) sources[n_src++] = ext_idx[e];
        for (int64_t p = 0; p < n_paths; p++) {
            const int64_t *indptr = path_indptr + p * (n_sources + 1);
            double *ring = (path_kind[p] == 0 ? ring_delta : ring_exp) + ((step + path_delay[p]) % ring_len) * n;
            for (int64_t s = 0; s < n_src; s++) {
                for (int64_t q = indptr[sources[s]]; q < indptr[sources[s] + 1]; q++) {
                    ring[targets[path_offset[p] + q]] += weights[path_offset[p] + q];
                }
            }
        }
        double *delta = ring_delta + (step % ring_len) * n, *expo = ring_exp + (step % ring_len) * n;
        for (int64_t k = 0; k < n; k++) {
            if (not_refractory[k]) v[k] = v[k] + delta[k];
            delta[k] = 0.0;
            current[k] = current[k] + expo[k];
            expo[k] = 0.0;
            if (fired[k]) {
                v[k] = reset[k];
                since_spike[k] = 0;
            }
        }
    }
}
