// Fused graph-attention aggregation for CPU (XLA FFI): softmax over each receiver's incoming
// edges and the weighted sum of the senders' rows in one kernel, without the [edges, dim]
// intermediates that XLA's gather/scatter path builds (the step's dominant cost on CPU).
//
// Layout (one shard of receivers): CSR rows = local receivers, `senders` = global node ids.
//   packed [M, H*D + H]: every node's row [h (H x D) | score_src (H)], so an edge reads one
//   row (its sender's) from memory; score_dst [n, H]: the local receivers;
//   indptr [n + 1], senders [E], log_w [E] (edges past indptr[n] are padding, ignored);
//   active [n]: rows whose output is needed (others are skipped: output 0, no gradient), so a
//   training step computes only the batch's receptive field.
// logit(e) = leaky_relu(score_src[j] + score_dst[i]) + log_w[e];
// alpha = softmax of the logits over row i; out[i] = sum_e alpha[e] * h[j].
// Sender rows are random reads (the cost on CPU): each pass prefetches kPrefetch edges ahead.
// Threads: rows are split into contiguous ranges of about equal active edge counts, one per thread
// (std::thread, no spin-waiting pool; TFNET_JAX_KERNEL_THREADS caps them), so results do not
// depend on scheduling. Compiled at first use by tfnet_jax/graph/cpu_kernel.py.
#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Edges of the active rows (rows with active[i] == 0 are skipped: their output is not needed),
// as a prefix over rows: work[i] = active edges in rows [0, i).
std::vector<int64_t> ActiveWork(const int32_t* indptr, const int32_t* active, int64_t n) {
  std::vector<int64_t> work(n + 1, 0);
  for (int64_t i = 0; i < n; ++i)
    work[i + 1] = work[i] + (active[i] ? indptr[i + 1] - indptr[i] : 0);
  return work;
}

// Calls body(t, first_row, end_row) for `threads` contiguous row ranges of ~equal active edges.
template <typename Body>
void ForRowRanges(const std::vector<int64_t>& work, int threads, Body body) {
  const int64_t n = (int64_t)work.size() - 1;
  std::vector<int64_t> bounds(threads + 1, n);
  bounds[0] = 0;
  for (int t = 1; t < threads; ++t) {
    const int64_t target = work[n] * t / threads;
    bounds[t] = std::lower_bound(work.begin(), work.end() - 1, target) - work.begin();
  }
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(body, t, bounds[t], bounds[t + 1]);
  body(0, bounds[0], bounds[1]);
  for (auto& worker : workers) worker.join();
}

constexpr int64_t kPrefetch = 8;

inline void PrefetchRow(const float* row, int64_t length, int write) {
  for (int64_t c = 0; c < length; c += 16) {  // 16 floats = one 64-byte line
    if (write) __builtin_prefetch(row + c, 1);
    else __builtin_prefetch(row + c, 0);
  }
}

ffi::Error GatForwardImpl(ffi::Buffer<ffi::F32> packed, ffi::Buffer<ffi::F32> score_dst,
                          ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> senders,
                          ffi::Buffer<ffi::F32> log_w, ffi::Buffer<ffi::S32> active,
                          ffi::ResultBuffer<ffi::F32> out,
                          ffi::ResultBuffer<ffi::F32> alpha, float slope) {
  const int64_t H = score_dst.dimensions()[1];
  const int64_t R = packed.dimensions()[1], HD = R - H, D = HD / H;
  const int64_t n = indptr.element_count() - 1;
  const int64_t E = senders.element_count();
  const float* pp = packed.typed_data();
  const float* sd = score_dst.typed_data();
  const int32_t* ip = indptr.typed_data();
  const int32_t* snd = senders.typed_data();
  const float* lw = log_w.typed_data();
  const int32_t* act = active.typed_data();
  float* op = out->typed_data();
  float* ap = alpha->typed_data();
  if (ip[n] > E) return ffi::Error::InvalidArgument("indptr points past the edge arrays");
  if (active.element_count() != n) return ffi::Error::InvalidArgument("active has one entry per row");
  const int64_t last = ip[n];
  std::fill(ap + last * H, ap + E * H, 0.0f);
  const std::vector<int64_t> work = ActiveWork(ip, act, n);

  ForRowRanges(work, ThreadCount(work[n]), [&](int, int64_t first, int64_t end) {
    std::vector<float> top(H), inv(H), coef(HD);
    for (int64_t i = first; i < end; ++i) {
      const int64_t lo = ip[i], hi = ip[i + 1];
      float* oi = op + i * HD;
      std::fill(oi, oi + HD, 0.0f);
      if (!act[i]) std::fill(ap + lo * H, ap + hi * H, 0.0f);
      if (lo == hi || !act[i]) continue;
      const float* dst = sd + i * H;
      std::fill(top.begin(), top.end(), -INFINITY);
      for (int64_t e = lo; e < hi; ++e) {  // logits (kept in alpha) and their max per head
        if (e + kPrefetch < last) PrefetchRow(pp + (int64_t)snd[e + kPrefetch] * R, R, 0);
        const float* src = pp + (int64_t)snd[e] * R + HD;
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
      for (int64_t e = lo; e < hi; ++e) {  // out[i] += alpha(e) h[j]: rows just read, still cached
        for (int64_t k = 0; k < H; ++k) {
          const float a = ap[e * H + k] * inv[k];
          ap[e * H + k] = a;
          for (int64_t d = 0; d < D; ++d) coef[k * D + d] = a;
        }
        const float* hj = pp + (int64_t)snd[e] * R;
        for (int64_t c = 0; c < HD; ++c) oi[c] += coef[c] * hj[c];
      }
    }
  });
  return ffi::Error::Success();
}

// Gradient with respect to the packed rows (every node: a scatter over senders; the h part
// and the score_src part) and to score_dst (local receivers), from the forward's alpha.
ffi::Error GatBackwardImpl(ffi::Buffer<ffi::F32> d_out, ffi::Buffer<ffi::F32> packed,
                           ffi::Buffer<ffi::F32> score_dst, ffi::Buffer<ffi::S32> indptr,
                           ffi::Buffer<ffi::S32> senders, ffi::Buffer<ffi::F32> alpha,
                           ffi::Buffer<ffi::S32> active, ffi::ResultBuffer<ffi::F32> d_packed, ffi::ResultBuffer<ffi::F32> d_dst,
                           float slope) {
  const int64_t M = packed.dimensions()[0], H = score_dst.dimensions()[1];
  const int64_t R = packed.dimensions()[1], HD = R - H, D = HD / H;
  const int64_t n = indptr.element_count() - 1;
  const float* gp = d_out.typed_data();
  const float* pp = packed.typed_data();
  const float* sd = score_dst.typed_data();
  const int32_t* ip = indptr.typed_data();
  const int32_t* snd = senders.typed_data();
  const float* ap = alpha.typed_data();
  const int32_t* act = active.typed_data();
  float* dp = d_packed->typed_data();
  float* ddst = d_dst->typed_data();
  const int64_t size = M * R, last = ip[n];
  if (active.element_count() != n) return ffi::Error::InvalidArgument("active has one entry per row");
  const std::vector<int64_t> work = ActiveWork(ip, act, n);
  const int threads = ThreadCount(work[n]);
  // Scatters into senders: thread 0 writes the output, the others pooled buffers, summed after.
  std::vector<std::unique_ptr<std::vector<float>>> scratch;
  for (int t = 1; t < threads; ++t) scratch.push_back(AcquireScratch(size));
  std::fill(dp, dp + size, 0.0f);

  ForRowRanges(work, threads, [&](int t, int64_t first, int64_t end) {
    float* mine = dp;
    if (t > 0) {
      std::fill(scratch[t - 1]->begin(), scratch[t - 1]->end(), 0.0f);
      mine = scratch[t - 1]->data();
    }
    std::vector<float> d_alpha, z, weighted(H), d_dst_i(H);
    for (int64_t i = first; i < end; ++i) {
      const int64_t lo = ip[i], hi = ip[i + 1];
      if (!act[i]) {  // not computed forward: no gradient flows through it
        for (int64_t k = 0; k < H; ++k) ddst[i * H + k] = 0.0f;
        continue;
      }
      const float* gi = gp + i * HD;
      const float* dst = sd + i * H;
      d_alpha.resize((hi - lo) * H);
      z.resize((hi - lo) * H);
      std::fill(weighted.begin(), weighted.end(), 0.0f);
      // Pass 1, the random rows: d_alpha(e) = <d_out[i], h[j]> per head, the pre-activation
      // z(e) kept for pass 2, and d_h[j] += alpha(e) d_out[i].
      for (int64_t e = lo; e < hi; ++e) {
        if (e + kPrefetch < last) {
          const int64_t ahead = snd[e + kPrefetch];
          PrefetchRow(pp + ahead * R, R, 0);
          PrefetchRow(mine + ahead * R, R, 1);
        }
        const int64_t j = snd[e];
        const float* row = pp + j * R;
        float* d_row = mine + j * R;
        for (int64_t k = 0; k < H; ++k) {
          const float a = ap[e * H + k];
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) {
            dot += gi[k * D + d] * row[k * D + d];
            d_row[k * D + d] += a * gi[k * D + d];
          }
          d_alpha[(e - lo) * H + k] = dot;
          z[(e - lo) * H + k] = row[HD + k] + dst[k];
          weighted[k] += a * dot;
        }
      }
      std::fill(d_dst_i.begin(), d_dst_i.end(), 0.0f);
      for (int64_t e = lo; e < hi; ++e) {  // pass 2: softmax and leaky-relu backward
        float* d_src = mine + (int64_t)snd[e] * R + HD;  // rows touched in pass 1: cached
        for (int64_t k = 0; k < H; ++k) {
          const int64_t x = (e - lo) * H + k;
          const float dz = ap[e * H + k] * (d_alpha[x] - weighted[k]) * (z[x] >= 0.0f ? 1.0f : slope);
          d_dst_i[k] += dz;
          d_src[k] += dz;
        }
      }
      for (int64_t k = 0; k < H; ++k) ddst[i * H + k] = d_dst_i[k];
    }
  });
  for (auto& buffer : scratch) {
    const float* values = buffer->data();
    for (int64_t x = 0; x < size; ++x) dp[x] += values[x];
    ReleaseScratch(std::move(buffer));
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(TfnetGatForward, GatForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("slope"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(TfnetGatBackward, GatBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("slope"));
