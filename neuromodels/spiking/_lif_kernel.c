/* One layer of current-based LIF neurons over all time steps: the inner loop of
 * neuromodels.spiking.network.run_network_numpy, compiled. Same operations in the same order, so float64 and
 * float32 results equal the NumPy loop bit for bit (compiled with -ffp-contract=off: no fused multiply-add).
 * Order per step (Brian2's schedule): record v; state update (v' = a_vv v + a_vi I + b_v, I' = a_ii I; v held
 * while refractory); threshold; synaptic input I += jumps[n]; reset of the neurons that fired. */
#include <stdint.h>
#include <string.h>

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

/* The same layer driven by input spike events instead of a dense (time, batch, n) array of synaptic increments
 * (issue 19): the events of (step n, trial b) are event_idx[event_ptr[r] .. event_ptr[r+1]), r = n*row_step +
 * b*row_trial, ascending presynaptic indices. At step n each trial's increment is summed from zero over the weight
 * rows of the events of step n - delay, in ascending presynaptic order, as the CSR product of the NumPy engine sums
 * them (1.0 * w == w), then added to the current: the same values as lif_layer_* on those jumps, bit for bit. The
 * loop runs over trials x events (a gather-sum), so the work scales with the input spikes, not the raster size.
 * jump: scratch of n_post reals. Arrays v, current, since_spike, spikes, voltage, membrane as in lif_layer_*
 * with n_units = batch * n_post (trial-major within a step); with out_trial_major, spikes/voltage/membrane are
 * (batch, time, n_post) instead of (time, batch, n_post). */
#define LIF_EVENTS(NAME, REAL)                                                                                  \
void NAME(int64_t n_steps, int64_t batch, int64_t n_post, const int64_t *event_ptr, const int64_t *event_idx,  \
          int64_t row_step, int64_t row_trial, int64_t delay, const REAL *weights, REAL *jump, REAL *v,         \
          REAL *current, REAL a_vv, REAL a_vi, REAL a_ii, REAL b_v, REAL threshold, REAL reset,                 \
          int64_t ref_steps, int64_t *since_spike, uint8_t *spikes, REAL *voltage, REAL *membrane,              \
          int64_t out_trial_major)                                                                              \
{                                                                                                               \
    const int64_t n_units = batch * n_post;                                                                     \
    for (int64_t n = 0; n < n_steps; n++) {                                                                     \
        for (int64_t b = 0; b < batch; b++) {                                                                   \
            for (int64_t j = 0; j < n_post; j++) jump[j] = (REAL)0;                                             \
            if (n >= delay) {                                                                                   \
                const int64_t r = (n - delay) * row_step + b * row_trial;                                       \
                for (int64_t e = event_ptr[r]; e < event_ptr[r + 1]; e++) {                                     \
                    const REAL *w = weights + event_idx[e] * n_post;                                            \
                    for (int64_t j = 0; j < n_post; j++) jump[j] = jump[j] + w[j];                              \
                }                                                                                               \
            }                                                                                                   \
            const int64_t row = out_trial_major ? (b * n_steps + n) * n_post : n * n_units + b * n_post;        \
            REAL *vb = v + b * n_post, *cb = current + b * n_post;                                              \
            int64_t *sb = since_spike + b * n_post;                                                             \
            for (int64_t k = 0; k < n_post; k++) {                                                              \
                if (voltage) voltage[row + k] = vb[k];                                                          \
                REAL v_new = vb[k] * a_vv;                                                                      \
                v_new = v_new + cb[k] * a_vi;                                                                   \
                v_new = v_new + b_v;                                                                            \
                cb[k] = cb[k] * a_ii;                                                                           \
                int free_to_fire = 1;                                                                           \
                if (ref_steps) {                                                                                \
                    sb[k] += 1;                                                                                 \
                    free_to_fire = sb[k] >= ref_steps;                                                          \
                    if (free_to_fire) vb[k] = v_new;                                                            \
                } else {                                                                                        \
                    vb[k] = v_new;                                                                              \
                }                                                                                               \
                if (membrane) membrane[row + k] = vb[k];                                                        \
                const int fired = (vb[k] > threshold) && free_to_fire;                                          \
                cb[k] = cb[k] + jump[k];                                                                        \
                if (fired) {                                                                                    \
                    vb[k] = reset;                                                                              \
                    if (ref_steps) sb[k] = 0;                                                                   \
                }                                                                                               \
                spikes[row + k] = (uint8_t)fired;                                                               \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
}

LIF_EVENTS(lif_events_f64, double)
LIF_EVENTS(lif_events_f32, float)

/* The spike events of a one-byte 0/1 raster of n_rows rows of n_cols: idx[ptr[r] .. ptr[r+1]) = the columns of row r
 * that are nonzero, ascending (np.flatnonzero per row), scanning 8 bytes at a time. Returns the number of events,
 * or -1 as soon as there are more than `capacity` (the raster is then too dense for events). */
int64_t spike_events_u8(int64_t n_rows, int64_t n_cols, const uint8_t *data, int64_t capacity, int64_t *ptr,
                        int64_t *idx)
{
    int64_t count = 0;
    ptr[0] = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *row = data + r * n_cols;
        int64_t c = 0;
        for (; c + 8 <= n_cols; c += 8) {
            uint64_t word;
            memcpy(&word, row + c, 8);
            if (!word) continue;
            for (int64_t i = c; i < c + 8; i++) {
                if (row[i]) {
                    if (count >= capacity) return -1;
                    idx[count++] = i;
                }
            }
        }
        for (; c < n_cols; c++) {
            if (row[c]) {
                if (count >= capacity) return -1;
                idx[count++] = c;
            }
        }
        ptr[r + 1] = count;
    }
    return count;
}

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
