// A one-layer GRU unrolled over a whole sequence in one call, for the learner's agent passes
// (algo.fused_gru=true; differ/nets/fused_gru.py builds and loads it).
//
// torch's CPU GRU runs about ten tensor ops per time step forward and more backward, each a few
// microseconds on the learner's small [rows x 64] tensors, so the op calls cost more than the
// arithmetic. Here a step is one matmul (h W_hh^T) and one pass over the gates in a loop the
// compiler vectorises; the backward is one matmul per step, with the weight gradients summed over
// all steps in one matmul at the end. Same equations as nn.GRU (PyTorch's gate order r, z, n):
//   r = s(x W_ir + b_ir + h W_hr + b_hr),  z = s(x W_iz + b_iz + h W_hz + b_hz)
//   n = tanh(x W_in + b_in + r (h W_hn + b_hn)),  h' = (h - n) z + n
// The vectorised exp / tanh round differently from torch's, so results agree with nn.GRU to
// float precision, not bit for bit; each run is still deterministic (fixed loop order).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <vector>

static inline float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// One step's gates for rows [i0, i1). a: x W_ih^T + b_ih [R, 3H]; b: h W_hh^T [R, 3H]; c: b_hh [3H];
// p: h [R, H] -> o: h' [R, H]; when g is given it keeps what the backward needs: r, z, n and
// h W_hn^T + b_hn.
static void __attribute__((noinline)) gates_forward(const float* __restrict a, const float* __restrict b,
                                                    const float* __restrict c, const float* __restrict p,
                                                    float* __restrict o, float* __restrict g, int64_t i0,
                                                    int64_t i1, int64_t H) {
  for (int64_t i = i0; i < i1; ++i) {
    const float* ai = a + i * 3 * H;
    const float* bi = b + i * 3 * H;
    const float* pi = p + i * H;
    float* oi = o + i * H;
    if (g) {
      float* gi = g + i * 4 * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const float hn = bi[2 * H + j] + c[2 * H + j];
        const float r = sigmoid(ai[j] + (bi[j] + c[j]));
        const float z = sigmoid(ai[H + j] + (bi[H + j] + c[H + j]));
        const float n = tanhf(ai[2 * H + j] + r * hn);
        oi[j] = (pi[j] - n) * z + n;
        gi[j] = r;
        gi[H + j] = z;
        gi[2 * H + j] = n;
        gi[3 * H + j] = hn;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const float r = sigmoid(ai[j] + (bi[j] + c[j]));
        const float z = sigmoid(ai[H + j] + (bi[H + j] + c[H + j]));
        const float n = tanhf(ai[2 * H + j] + r * (bi[2 * H + j] + c[2 * H + j]));
        oi[j] = (pi[j] - n) * z + n;
      }
    }
  }
}

// One step's gradients for rows [i0, i1). go: dL/dh' from the output [R, H]; dh: dL/dh' through the
// next step [R, H], overwritten with the direct part of dL/dh (the W_hh part is added after);
// g: the saved gates; p: h -> da: dL/d(x W_ih^T + b_ih) [R, 3H], db: dL/d(h W_hh^T + b_hh) [R, 3H].
static void __attribute__((noinline)) gates_backward(const float* __restrict go, float* __restrict dh,
                                                     const float* __restrict g, const float* __restrict p,
                                                     float* __restrict da, float* __restrict db,
                                                     int64_t i0, int64_t i1, int64_t H) {
  for (int64_t i = i0; i < i1; ++i) {
    const float* gi = g + i * 4 * H;
    const float* pi = p + i * H;
    const float* goi = go + i * H;
    float* dhi = dh + i * H;
    float* dai = da + i * 3 * H;
    float* dbi = db + i * 3 * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const float r = gi[j], z = gi[H + j], n = gi[2 * H + j], hn = gi[3 * H + j];
      const float d = goi[j] + dhi[j];
      const float dn = d * (1.f - z) * (1.f - n * n);
      const float dz = d * (pi[j] - n) * z * (1.f - z);
      const float dr = dn * hn * r * (1.f - r);
      dai[j] = dr;
      dai[H + j] = dz;
      dai[2 * H + j] = dn;
      dbi[j] = dr;
      dbi[H + j] = dz;
      dbi[2 * H + j] = dn * r;
      dhi[j] = d * z;
    }
  }
}

// Rows per thread: the gate passes split rows across threads only when a step has enough work to
// pay for it (each row is computed alone, so the split does not change any number).
static int64_t grain(int64_t H) { return std::max<int64_t>(1, 32768 / (4 * H)); }

static void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), "fused GRU: ", name,
              " must be a contiguous float32 CPU tensor");
}

// Sequences of different lengths run packed, as in torch's PackedSequence: the rows of every step
// are stored one step after another, step t holding the first sizes[t] sequences (sorted longest
// first, so sizes never grows and a sequence keeps its row while it lasts). Steps past a
// sequence's end are not computed at all. A batch of equal lengths is the case sizes[t] = R.

static std::vector<int64_t> offsets_of(const at::Tensor& sizes, int64_t P, int64_t R) {
  TORCH_CHECK(sizes.device().is_cpu() && sizes.scalar_type() == at::kLong && sizes.dim() == 1,
              "fused GRU: sizes must be a 1-d int64 CPU tensor");
  const int64_t T = sizes.size(0);
  const int64_t* s = sizes.data_ptr<int64_t>();
  std::vector<int64_t> off(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) {
    TORCH_CHECK(s[t] >= 0 && s[t] <= (t == 0 ? R : s[t - 1]), "fused GRU: sizes must not grow, and sizes[0] <= rows of h0");
    off[t + 1] = off[t] + s[t];
  }
  TORCH_CHECK(off[T] == P, "fused GRU: sizes must add up to the packed rows");
  return off;
}

// gi [P, 3H] = x W_ih^T + b_ih of every packed row; sizes [T]; h0 [R, H] (R >= sizes[0]);
// w_hh [3H, H]; b_hh [3H]. Returns the outputs [P, H] and, when save, the gates [P, 4H].
std::vector<at::Tensor> forward(const at::Tensor& gi, const at::Tensor& sizes, const at::Tensor& h0,
                                const at::Tensor& w_hh, const at::Tensor& b_hh, bool save) {
  check(gi, "gi"); check(h0, "h0"); check(w_hh, "w_hh"); check(b_hh, "b_hh");
  TORCH_CHECK(gi.dim() == 2 && h0.dim() == 2, "fused GRU: gi [P, 3H] and h0 [R, H]");
  const int64_t P = gi.size(0), R = h0.size(0), H = h0.size(1), T = sizes.size(0);
  TORCH_CHECK(gi.size(1) == 3 * H && w_hh.dim() == 2 && w_hh.size(0) == 3 * H && w_hh.size(1) == H &&
              b_hh.dim() == 1 && b_hh.size(0) == 3 * H, "fused GRU: gi [P, 3H], w_hh [3H, H], b_hh [3H]");
  const auto off = offsets_of(sizes, P, R);
  const int64_t* s = sizes.data_ptr<int64_t>();
  auto out = at::empty({P, H}, gi.options());
  auto gates = at::empty({save ? P : 0, 4 * H}, gi.options());
  auto gh = at::empty({R, 3 * H}, gi.options());
  const auto wt = w_hh.t();
  for (int64_t t = 0; t < T; ++t) {
    const int64_t n = s[t];
    if (n == 0) break;
    const at::Tensor h = t == 0 ? h0.narrow(0, 0, n) : out.narrow(0, off[t - 1], n);
    auto ght = gh.narrow(0, 0, n);
    at::mm_out(ght, h, wt);
    const float* a = gi.data_ptr<float>() + off[t] * 3 * H;
    const float* p = h.data_ptr<float>();
    float* o = out.data_ptr<float>() + off[t] * H;
    float* g = save ? gates.data_ptr<float>() + off[t] * 4 * H : nullptr;
    at::parallel_for(0, n, grain(H), [&](int64_t i0, int64_t i1) {
      gates_forward(a, gh.data_ptr<float>(), b_hh.data_ptr<float>(), p, o, g, i0, i1, H);
    });
  }
  return {out, gates};
}

// grad_out [P, H]: dL/d(every output), the last states' own gradients included by the caller.
// Returns dL/d gi [P, 3H], dL/d h0 [R, H], dL/d w_hh [3H, H], dL/d b_hh [3H].
std::vector<at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& gates,
                                 const at::Tensor& sizes, const at::Tensor& h0, const at::Tensor& w_hh) {
  check(grad_out, "grad_out"); check(out, "out"); check(gates, "gates"); check(h0, "h0"); check(w_hh, "w_hh");
  const int64_t P = out.size(0), H = out.size(1), R = h0.size(0), T = sizes.size(0);
  TORCH_CHECK(grad_out.sizes() == out.sizes() && gates.dim() == 2 && gates.size(0) == P && gates.size(1) == 4 * H &&
              h0.size(1) == H && w_hh.size(0) == 3 * H && w_hh.size(1) == H, "fused GRU: backward shapes");
  const auto off = offsets_of(sizes, P, R);
  const int64_t* s = sizes.data_ptr<int64_t>();
  auto dgi = at::empty({P, 3 * H}, out.options());
  auto dgh = at::empty({P, 3 * H}, out.options());
  // rows past a sequence's end stay zero: no later step reaches them
  auto dh = at::zeros({R, H}, out.options());
  std::vector<at::Tensor> hs;  // the inputs of every step's h W_hh^T, packed like the outputs
  hs.reserve(T);
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t n = s[t];
    if (n == 0) continue;
    const float* go = grad_out.data_ptr<float>() + off[t] * H;
    const float* g = gates.data_ptr<float>() + off[t] * 4 * H;
    const float* p = (t == 0 ? h0.data_ptr<float>() : out.data_ptr<float>() + off[t - 1] * H);
    float* da = dgi.data_ptr<float>() + off[t] * 3 * H;
    float* db = dgh.data_ptr<float>() + off[t] * 3 * H;
    at::parallel_for(0, n, grain(H), [&](int64_t i0, int64_t i1) {
      gates_backward(go, dh.data_ptr<float>(), g, p, da, db, i0, i1, H);
    });
    dh.narrow(0, 0, n).addmm_(dgh.narrow(0, off[t], n), w_hh);
  }
  for (int64_t t = 0; t < T && s[t] > 0; ++t)
    hs.push_back(t == 0 ? h0.narrow(0, 0, s[0]) : out.narrow(0, off[t - 1], s[t]));
  const auto h_in = hs.empty() ? at::zeros({0, H}, out.options()) : at::cat(hs, 0);
  return {dgi, dh, dgh.t().mm(h_in), dgh.sum(0)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "GRU over a sequence (gates saved for the backward when save)");
  m.def("backward", &backward, "its gradients");
}
