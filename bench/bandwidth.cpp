// pinfer-bench-bandwidth: measures how fast this machine's cores can stream
// memory they only read, the limit that token generation runs into (every
// weight a token needs is read once and used once). The benchmark script
// runs it in the same benchmark run as the models so that the ratio "achieved /
// measured" is taken under the same load of a shared machine.
//
// Each thread sums its own contiguous slice of a buffer several times larger
// than the last-level cache, in each of several read patterns (scalar,
// AVX2, and four streams at once with AVX2 and AVX-512 loads, passes
// interleaved); a pattern's figure is bytes read / wall time of the slowest
// thread, the median over repetitions, and the probe's is the best
// pattern's, so that no engine reading the same memory should exceed it.
//
// With --kernels it also times the runtime's matrix-vector products over
// weights of the same total size (the f32-activation kernels of the
// reference and the quantised-activation ones), interleaving kernel passes
// with probe passes over the very same bytes, and prints each kernel's
// achieved bandwidth as a share of the probe's: the target for dense
// generation is >= 90 %. With --pool it times many small parallel steps
// with the thread pool blocking at once vs polling before it blocks.
#include "runtime/ggml_types.h"
#include "runtime/kernels.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Sums 64-bit words so that the loads cannot be optimised away; four
// independent accumulators keep enough loads in flight to saturate the
// memory system instead of the add latency.
uint64_t sumScalar(const uint64_t *p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i)
    a += p[i];
  return a + b + c + d;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t sumAvx2(const uint64_t *p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 12)));
  }
  __m256i s =
      _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i *)lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sumScalar(p + i, n - i);
}
#endif

#if defined(__x86_64__)
// Four streams at once, 64-byte loads: the slice's quarters are read in
// lockstep, so that four hardware prefetch streams and twice the bytes per
// load are in flight (one contiguous stream left bandwidth unused on some
// machines: an engine's decode read more than it).
__attribute__((target("avx512f"))) uint64_t sumAvx512x4(const uint64_t *p,
                                                        size_t n) {
  const size_t q = (n / 4) & ~size_t(7); // words per stream, whole vectors
  const uint64_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < q; i += 8) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(s0 + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(s1 + i));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(s2 + i));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(s3 + i));
  }
  const __m512i s =
      _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, s);
  return sumScalar(lanes, 8) + sumScalar(p + 4 * q, n - 4 * q);
}

__attribute__((target("avx2"))) uint64_t sumAvx2x4(const uint64_t *p,
                                                   size_t n) {
  const size_t q = (n / 4) & ~size_t(3);
  const uint64_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < q; i += 4) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(s0 + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(s1 + i)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(s2 + i)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(s3 + i)));
  }
  __m256i s =
      _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256((__m256i *)lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] +
         sumScalar(p + 4 * q, n - 4 * q);
}
#endif

using SumFn = uint64_t (*)(const uint64_t *, size_t);

// The read patterns the probe tries; its figure is the best of them, so
// that it stays a ceiling whichever pattern this machine favours.
struct SumVariant {
  const char *name;
  SumFn fn;
};

std::vector<SumVariant> sumVariants() {
  std::vector<SumVariant> v = {{"scalar", sumScalar}};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) {
    v.push_back({"avx2", sumAvx2});
    v.push_back({"avx2 x4 streams", sumAvx2x4});
  }
  if (__builtin_cpu_supports("avx512f"))
    v.push_back({"avx512 x4 streams", sumAvx512x4});
#endif
  return v;
}

// The pattern the kernel comparison (--kernels) interleaves with.
SumFn pickSum() { return sumVariants().back().fn; }

double nowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One timed pass: the pool's threads each read their slice once. Returns
// GB/s (1e9 bytes) over the wall time of the whole pass.
double onePass(const uint64_t *buf, size_t words, pinfer::ThreadPool &pool,
               SumFn sum, uint64_t &sink) {
  const int nt = pool.size();
  std::vector<uint64_t> partial(size_t(nt) * 8, 0); // padded: no sharing
  struct Ctx {
    const uint64_t *buf;
    size_t words;
    SumFn sum;
    uint64_t *partial;
  } ctx{buf, words, sum, partial.data()};
  double t0 = nowSeconds();
  pool.run(
      [](void *p, int t, int n) {
        const Ctx &c = *static_cast<const Ctx *>(p);
        // Slices start on 128-byte boundaries (aligned AVX2 loads).
        size_t lo = (c.words * t / n) & ~size_t(15);
        size_t hi =
            t + 1 == n ? c.words : (c.words * (t + 1) / n) & ~size_t(15);
        c.partial[size_t(t) * 8] = c.sum(c.buf + lo, hi - lo);
      },
      &ctx);
  double dt = nowSeconds() - t0;
  for (int t = 0; t < nt; ++t)
    sink += partial[size_t(t) * 8];
  return double(words) * 8 / dt / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Weights of `type` filling `bytes`, as matrices of the 1b preset's FFN
// shape (5632 rows of 2048), laid out back to back in `buf`. One matrix is
// quantised from random values and copied: memory traffic does not depend
// on the values, and quantising hundreds of MiB would dominate the run.
std::vector<pinfer::Weight> makeWeights(pinfer::GGMLType type, uint8_t *buf,
                                        size_t bytes) {
  using namespace pinfer;
  const int64_t cols = 2048, rows = 5632;
  const size_t rb = rowBytes(type, cols), mb = rb * rows;
  std::vector<Weight> ws;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.f, 0.02f);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float &v : row)
      v = dist(rng);
    quantizeRow(type, row.data(), buf + r * rb, cols);
  }
  for (size_t off = 0; off + mb <= bytes; off += mb) {
    if (off)
      std::memcpy(buf + off, buf, mb);
    ws.push_back(Weight{"w", type, cols, rows, rb, buf + off});
  }
  return ws;
}

// One "token" over all matrices, one parallel step per matrix as the
// forward pass does. Returns GB/s of weight bytes.
double kernelPass(const std::vector<pinfer::Weight> &ws, const float *x,
                  float *y, bool q8act, pinfer::ThreadPool &pool) {
  double t0 = nowSeconds();
  size_t bytes = 0;
  for (const pinfer::Weight &w : ws) {
    pinfer::MatvecJob job{&w, x, y};
    job.f32Act = !q8act;
    pinfer::matvecs(&job, 1, pool);
    bytes += w.rowBytes * size_t(w.rows);
  }
  return double(bytes) / (nowSeconds() - t0) / 1e9;
}

void usage(FILE *out) {
  std::fprintf(out,
               "usage: pinfer-bench-bandwidth [--mib N] [--threads 1,2,...] "
               "[--reps N] [--json]\n"
               "  --mib N      buffer size in MiB (default 1024)\n"
               "  --threads L  thread counts to measure (default 1,2)\n"
               "  --reps N     timed passes per thread count, median kept "
               "(default 7)\n"
               "  --json       one JSON object instead of text lines\n"
               "  --kernels    also time the matvec kernels (f16, q8_0, q4_0,\n"
               "               q4_K, q5_K, q6_K) against the probe over the\n"
               "               same bytes\n"
               "  --pool       time small parallel steps (cache-resident "
               "matvecs, as\n"
               "               in one token of a small model) with the pool "
               "blocking at\n"
               "               once vs polling 20/100 us before blocking\n");
}

} // namespace

int main(int argc, char **argv) {
  size_t mib = 1024;
  int reps = 7;
  bool json = false, kernels = false, poolBench = false;
  std::vector<int> threadCounts = {1, 2};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *flag) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "pinfer-bench-bandwidth: %s: missing value\n",
                     flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mib") {
      mib = std::strtoull(value("--mib"), nullptr, 10);
    } else if (a == "--reps") {
      reps = std::atoi(value("--reps"));
    } else if (a == "--threads") {
      threadCounts.clear();
      std::string list = value("--threads");
      for (size_t pos = 0; pos <= list.size();) {
        size_t comma = list.find(',', pos);
        if (comma == std::string::npos)
          comma = list.size();
        int n = std::atoi(list.substr(pos, comma - pos).c_str());
        if (n < 1) {
          std::fprintf(stderr,
                       "pinfer-bench-bandwidth: --threads '%s': expected a "
                       "comma-separated list of positive integers\n",
                       list.c_str());
          return 2;
        }
        threadCounts.push_back(n);
        pos = comma + 1;
      }
    } else if (a == "--pool") {
      poolBench = true;
    } else if (a == "--kernels") {
      kernels = true;
    } else if (a == "--json") {
      json = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "pinfer-bench-bandwidth: unknown argument '%s'\n",
                   a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (mib < 16 || reps < 1) {
    std::fprintf(stderr, "pinfer-bench-bandwidth: expected --mib >= 16 and "
                         "--reps >= 1\n");
    return 2;
  }

  size_t bytes = mib << 20, words = bytes / 8;
  uint64_t *buf = static_cast<uint64_t *>(std::aligned_alloc(4096, bytes));
  if (!buf) {
    std::fprintf(stderr, "pinfer-bench-bandwidth: cannot allocate %zu MiB\n",
                 mib);
    return 1;
  }
  // Touch every page (and give it distinct contents) so that the passes
  // measure DRAM reads, not page faults or the shared zero page.
  for (size_t i = 0; i < words; ++i)
    buf[i] = i * 0x9E3779B97F4A7C15ull;

  SumFn sum = pickSum();
  const std::vector<SumVariant> variants = sumVariants();
  uint64_t sink = 0;
  std::vector<double> medians;
  for (int nt : threadCounts) {
    pinfer::ThreadPool pool(nt);
    onePass(buf, words, pool, sum, sink); // warm-up: threads, TLB
    // Each pattern's passes interleaved, so the machine's noise falls on
    // all alike; the best median is the ceiling.
    std::vector<std::vector<double>> gbs(variants.size());
    for (int r = 0; r < reps; ++r)
      for (size_t v = 0; v < variants.size(); ++v)
        gbs[v].push_back(onePass(buf, words, pool, variants[v].fn, sink));
    double best = 0;
    size_t bestV = 0;
    for (size_t v = 0; v < variants.size(); ++v) {
      std::sort(gbs[v].begin(), gbs[v].end());
      const double m = gbs[v][gbs[v].size() / 2];
      if (!json)
        std::printf("threads %d: %-18s %.2f GB/s (median of %d, min %.2f, "
                    "max %.2f)\n",
                    nt, variants[v].name, m, reps, gbs[v].front(),
                    gbs[v].back());
      if (m > best) {
        best = m;
        bestV = v;
      }
    }
    medians.push_back(best);
    if (!json)
      std::printf("threads %d: read bandwidth %.2f GB/s (the best pattern, "
                  "%s)\n",
                  nt, best, variants[bestV].name);
  }
  if (json) {
    std::printf("{\"buffer_mib\": %zu, \"reps\": %d, \"read_gbps\": {", mib,
                reps);
    for (size_t k = 0; k < threadCounts.size(); ++k)
      std::printf("%s\"%d\": %.3f", k ? ", " : "", threadCounts[k], medians[k]);
    std::printf("}}\n");
  }

  if (kernels) {
    using pinfer::GGMLType;
    std::vector<float> x(2048), y(5632);
    std::mt19937 rng(2);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (float &v : x)
      v = dist(rng);
    std::printf("kernels (%s): GB/s of weights, median of %d, and share of "
                "the probe over the same bytes in the same rounds\n",
                pinfer::kernelIsaName(), reps);
    // Where the widest level is AVX-512, the products are timed at the AVX2
    // level too, in the same rounds.
    const bool wide = pinfer::kernelLevel() == 2;
    for (GGMLType type : {GGMLType::F16, GGMLType::Q8_0, GGMLType::Q4_0,
                          GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K}) {
      std::vector<pinfer::Weight> ws =
          makeWeights(type, reinterpret_cast<uint8_t *>(buf), bytes);
      const size_t used = ws.size() * ws[0].rowBytes * size_t(ws[0].rows);
      for (int nt : threadCounts) {
        pinfer::ThreadPool pool(nt);
        std::vector<double> probe, f32, q8, f32Avx2, q8Avx2;
        kernelPass(ws, x.data(), y.data(), false, pool); // warm-up
        for (int r = 0; r < reps; ++r) {
          probe.push_back(onePass(buf, used / 8, pool, sum, sink));
          f32.push_back(kernelPass(ws, x.data(), y.data(), false, pool));
          if (pinfer::usesQ8Act(type))
            q8.push_back(kernelPass(ws, x.data(), y.data(), true, pool));
          if (wide) {
            pinfer::setKernelIsa(pinfer::KernelIsa::Avx2);
            f32Avx2.push_back(kernelPass(ws, x.data(), y.data(), false, pool));
            if (pinfer::usesQ8Act(type))
              q8Avx2.push_back(kernelPass(ws, x.data(), y.data(), true, pool));
            pinfer::setKernelIsa(pinfer::KernelIsa::Auto);
          }
        }
        double p = median(probe), a = median(f32);
        std::printf("  %-5s threads %d: probe %.2f GB/s | f32-act %.2f GB/s "
                    "(%.0f%%)",
                    pinfer::typeName(type), nt, p, a, 100 * a / p);
        if (!q8.empty())
          std::printf(" | q8-act %.2f GB/s (%.0f%%)", median(q8),
                      100 * median(q8) / p);
        if (!f32Avx2.empty())
          std::printf(" | f32-act at avx2 %.2f GB/s", median(f32Avx2));
        if (!q8Avx2.empty())
          std::printf(" | q8-act at avx2 %.2f GB/s", median(q8Avx2));
        std::printf("\n");
      }
    }
  }
  if (poolBench) {
    using pinfer::GGMLType;
    // A 1024 x 2048 Q4_0 matrix (1.1 MiB, cache resident): one step costs
    // about as long as a wake-up, which is where the pool's choice shows.
    std::vector<pinfer::Weight> ws =
        makeWeights(GGMLType::Q4_0, reinterpret_cast<uint8_t *>(buf), bytes);
    pinfer::Weight w = ws[0];
    w.rows = 1024;
    std::vector<float> x(2048, 0.5f), y(1024);
    const int steps = 2000;
    std::printf("pool: us per step of a %lld x %lld q4_0 matvec, median of "
                "%d rounds of %d steps, settings interleaved\n",
                (long long)w.rows, (long long)w.cols, reps, steps);
    for (int nt : threadCounts) {
      pinfer::ThreadPool pool(nt);
      const int spins[] = {0, 20, 100};
      std::vector<double> us[3];
      for (int r = 0; r < reps; ++r)
        for (int k = 0; k < 3; ++k) {
          pool.setSpinMicros(spins[k]);
          pinfer::MatvecJob job{&w, x.data(), y.data()};
          double t0 = nowSeconds();
          for (int i = 0; i < steps; ++i)
            pinfer::matvecs(&job, 1, pool);
          us[k].push_back((nowSeconds() - t0) * 1e6 / steps);
        }
      std::printf("  threads %d: block %.1f us | poll 20 us %.1f us | poll "
                  "100 us %.1f us\n",
                  nt, median(us[0]), median(us[1]), median(us[2]));
    }
  }
  std::free(buf);
  // The sink is printed to stderr only when asked for nothing: it keeps the
  // sums observable so that the compiler must perform every load.
  if (sink == 0x5EED)
    std::fprintf(stderr, "%llu\n", (unsigned long long)sink);
  return 0;
}
