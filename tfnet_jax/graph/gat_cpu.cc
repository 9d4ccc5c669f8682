// Fused graph-attention aggregation for CPU (XLA FFI): softmax over each receiver's incoming
// edges and the weighted sum of the senders' rows in one pass, without the [edges, dim]
// intermediates that XLA's gather/scatter path builds (the step's dominant cost on CPU).
//
// Layout (one shard of receivers): CSR rows = local receivers, `senders` = global node ids.
//   h [M, H, D], score_src [M, H]: every node; score_dst [n, H]: the local receivers;
//   indptr [n + 1], senders [E], log_w [E] (edges past indptr[n] are padding, ignored).
// logit(e) = leaky_relu(score_src[j] + score_dst[i]) + log_w[e];
// alpha = softmax of the logits over row i; out[i] = sum_e alpha[e] * h[j].
// Threads: rows are split into contiguous ranges of about equal edge counts, one per thread
// (std::thread, no spin-waiting pool; TFNET_JAX_KERNEL_THREADS caps them), so results do not
// depend on scheduling. Compiled at first use by tfnet_jax/graph/cpu_kernel.py.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline float leaky(float z, float slope) { return z >= 0.0f ? z : slope * z; }

int ThreadCount(int64_t edges) {
  int threads = (int)std::max(1u, std::thread::hardware_concurrency());
  if (const char* cap = std::getenv("TFNET_JAX_KERNEL_THREADS")) threads = std::max(1, std::atoi(cap));
  // Below ~64k edges per thread, starting a thread costs more than it saves.
  return (int)std::max<int64_t>(1, std::min<int64_t>(threads, edges / 65536 + 1));
}

// Per-thread scatter buffers, reused across calls (fresh pages would fault on every step).
std::mutex scratch_mutex;
std::vector<std::unique_ptr<std::vector<float>>> scratch_pool;

std::unique_ptr<std::vector<float>> AcquireScratch(int64_t size) {
  std::unique_ptr<std::vector<float>> buffer;
  {
    std::lock_guard<std::mutex> lock(scratch_mutex);
    if (!scratch_pool.empty()) {
      buffer = std::move(scratch_pool.back());
      scratch_pool.pop_back();
    }
  }
  if (!buffer) buffer = std::make_unique<std::vector<float>>();
  buffer->resize(size);
  return buffer;
}

void ReleaseScratch(std::unique_ptr<std::vector<float>> buffer) {
  std::lock_guard<std::mutex> lock(scratch_mutex);
  scratch_pool.push_back(std::move(buffer));
}

// Calls body(t, first_row, end_row) for `threads` contiguous row ranges of ~equal edge counts.
template <typename Body>
void ForRowRanges(const int32_t* indptr, int64_t n, int threads, Body body) {
  std::vector<int64_t> bounds(threads + 1, n);
  bounds[0] = 0;
  for (int t = 1; t < threads; ++t) {
    const int64_t target = (int64_t)indptr[n] * t / threads;
    bounds[t] = std::lower_bound(indptr, indptr + n, (int32_t)target) - indptr;
  }
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(body, t, bounds[t], bounds[t + 1]);
  body(0, bounds[0], bounds[1]);
  for (auto& worker : workers) worker.join();
}

constexpr int64_t kPrefetch = 8;  // edges ahead: sender rows are random reads

ffi::Error GatForwardImpl(ffi::Buffer<ffi::F32> h, ffi::Buffer<ffi::F32> score_src,
                          ffi::Buffer<ffi::F32> score_dst, ffi::Buffer<ffi::S32> indptr,
                          ffi::Buffer<ffi::S32> senders, ffi::Buffer<ffi::F32> log_w,
                          ffi::ResultBuffer<ffi::F32> out, ffi::ResultBuffer<ffi::F32> alpha,
                          float slope) {
  const auto hd = h.dimensions();
  if (hd.size() != 3) return ffi::Error::InvalidArgument("h must be [nodes, heads, dim]");
  const int64_t H = hd[1], D = hd[2], HD = H * D;
  const int64_t n = indptr.element_count() - 1;
  const int64_t E = senders.element_count();
  const float* hp = h.typed_data();
  const float* ss = score_src.typed_data();
  const float* sd = score_dst.typed_data();
  const int32_t* ip = indptr.typed_data();
  const int32_t* snd = senders.typed_data();
  const float* lw = log_w.typed_data();
  float* op = out->typed_data();
  float* ap = alpha->typed_data();
  if (ip[n] > E) return ffi::Error::InvalidArgument("indptr points past the edge arrays");
  const int64_t last = ip[n];
  std::fill(ap + last * H, ap + E * H, 0.0f);

  ForRowRanges(ip, n, ThreadCount(last), [&](int, int64_t first, int64_t end) {
    std::vector<float> top(H), inv(H), coef(HD);
    for (int64_t i = first; i < end; ++i) {
      const int64_t lo = ip[i], hi = ip[i + 1];
      float* oi = op + i * HD;
      std::fill(oi, oi + HD, 0.0f);
      if (lo == hi) continue;
      const float* dst = sd + i * H;
      std::fill(top.begin(), top.end(), -INFINITY);
      for (int64_t e = lo; e < hi; ++e) {  // logits (kept in alpha) and their max per head
        if (e + kPrefetch < last) __builtin_prefetch(ss + (int64_t)snd[e + kPrefetch] * H);
        const float* src = ss + (int64_t)snd[e] * H;
        for (int64_t k = 0; k < H; ++k) {
          const float logit = leaky(src[k] + dst[k], slope) + lw[e];
          ap[e * H + k] = logit;
          top[k] = std::max(top[k], logit);
        }
      }
      std::fill(inv.begin(), inv.end(), 0.0f);
      for (int64_t e = lo; e < hi; ++e) {
        for (int64_t k = 0; k < H; ++k) {
          const float a = std::exp(ap[e * H + k] - top[k]);
          ap[e * H + k] = a;
          inv[k] += a;
        }
      }
      for (int64_t k = 0; k < H; ++k) inv[k] = 1.0f / inv[k];
      for (int64_t e = lo; e < hi; ++e) {  // out[i] += alpha(e) * h[j], whole rows at a time
        if (e + kPrefetch < last) {
          const int64_t ahead = snd[e + kPrefetch];
          __builtin_prefetch(hp + ahead * HD);
          __builtin_prefetch(hp + ahead * HD + 32);
        }
        for (int64_t k = 0; k < H; ++k) {
          const float a = ap[e * H + k] * inv[k];
          ap[e * H + k] = a;
          for (int64_t d = 0; d < D; ++d) coef[k * D + d] = a;
        }
        const float* hj = hp + (int64_t)snd[e] * HD;
        for (int64_t c = 0; c < HD; ++c) oi[c] += coef[c] * hj[c];
      }
    }
  });
  return ffi::Error::Success();
}

// Gradients of out (given d_out) with respect to h (every node: a scatter over senders),
// score_src (every node) and score_dst (local receivers), from the forward's alpha.
ffi::Error GatBackwardImpl(ffi::Buffer<ffi::F32> d_out, ffi::Buffer<ffi::F32> h,
                           ffi::Buffer<ffi::F32> score_src, ffi::Buffer<ffi::F32> score_dst,
                           ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> senders,
                           ffi::Buffer<ffi::F32> alpha, ffi::ResultBuffer<ffi::F32> d_h,
                           ffi::ResultBuffer<ffi::F32> d_src, ffi::ResultBuffer<ffi::F32> d_dst,
                           float slope) {
  const auto hd = h.dimensions();
  const int64_t M = hd[0], H = hd[1], D = hd[2], HD = H * D;
  const int64_t n = indptr.element_count() - 1;
  const float* gp = d_out.typed_data();
  const float* hp = h.typed_data();
  const float* ss = score_src.typed_data();
  const float* sd = score_dst.typed_data();
  const int32_t* ip = indptr.typed_data();
  const int32_t* snd = senders.typed_data();
  const float* ap = alpha.typed_data();
  float* dh = d_h->typed_data();
  float* dsrc = d_src->typed_data();
  float* ddst = d_dst->typed_data();
  const int64_t node_size = M * HD, score_size = M * H, last = ip[n];

  const int threads = ThreadCount(last);
  // Scatters into senders: thread 0 writes the outputs, the others private buffers, summed after.
  std::vector<float*> extra(threads, nullptr);
  std::vector<std::unique_ptr<std::vector<float>>> scratch;
  for (int t = 1; t < threads; ++t) scratch.push_back(AcquireScratch(node_size + score_size));
  std::fill(dh, dh + node_size, 0.0f);
  std::fill(dsrc, dsrc + score_size, 0.0f);

  ForRowRanges(ip, n, threads, [&](int t, int64_t first, int64_t end) {
    float* my_dh = dh;
    float* my_dsrc = dsrc;
    if (t > 0) {
      std::fill(scratch[t - 1]->begin(), scratch[t - 1]->end(), 0.0f);
      extra[t] = scratch[t - 1]->data();
      my_dh = extra[t];
      my_dsrc = my_dh + node_size;
    }
    std::vector<float> d_alpha, weighted(H), d_dst_i(H);
    for (int64_t i = first; i < end; ++i) {
      const int64_t lo = ip[i], hi = ip[i + 1];
      const float* gi = gp + i * HD;
      const float* dst = sd + i * H;
      d_alpha.resize((hi - lo) * H);
      std::fill(weighted.begin(), weighted.end(), 0.0f);
      // Pass 1, the random rows: d_alpha(e) = <d_out[i], h[j]> per head, and d_h[j] += alpha(e) d_out[i].
      for (int64_t e = lo; e < hi; ++e) {
        if (e + kPrefetch < last) {
          const int64_t ahead = snd[e + kPrefetch];
          __builtin_prefetch(hp + ahead * HD);
          __builtin_prefetch(hp + ahead * HD + 32);
          __builtin_prefetch(my_dh + ahead * HD, 1);
          __builtin_prefetch(my_dh + ahead * HD + 32, 1);
          __builtin_prefetch(ss + ahead * H);
        }
        const int64_t j = snd[e];
        const float* hj = hp + j * HD;
        float* dhj = my_dh + j * HD;
        for (int64_t k = 0; k < H; ++k) {
          const float a = ap[e * H + k];
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) {
            dot += gi[k * D + d] * hj[k * D + d];
            dhj[k * D + d] += a * gi[k * D + d];
          }
          d_alpha[(e - lo) * H + k] = dot;
          weighted[k] += a * dot;
        }
      }
      std::fill(d_dst_i.begin(), d_dst_i.end(), 0.0f);
      for (int64_t e = lo; e < hi; ++e) {  // pass 2: softmax and leaky-relu backward
        const int64_t j = snd[e];
        for (int64_t k = 0; k < H; ++k) {
          const float a = ap[e * H + k];
          const float z = ss[j * H + k] + dst[k];
          const float dz = a * (d_alpha[(e - lo) * H + k] - weighted[k]) * (z >= 0.0f ? 1.0f : slope);
          d_dst_i[k] += dz;
          my_dsrc[j * H + k] += dz;
        }
      }
      for (int64_t k = 0; k < H; ++k) ddst[i * H + k] = d_dst_i[k];
    }
  });
  for (int t = 1; t < threads; ++t) {
    const float* buffer = extra[t];
    for (int64_t x = 0; x < node_size; ++x) dh[x] += buffer[x];
    for (int64_t x = 0; x < score_size; ++x) dsrc[x] += buffer[node_size + x];
  }
  for (auto& buffer : scratch) ReleaseScratch(std::move(buffer));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(TfnetGatForward, GatForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("slope"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(TfnetGatBackward, GatBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("slope"));
