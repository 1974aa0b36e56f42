// CPU kernels of the dense reference; see kernels.h. The dot products
// themselves are in runtime/dot_kernels.h, reached through the type table's
// rows (runtime/type_table.h); this file picks among them at start-up and
// builds the products, norms and attention on them.
#include "runtime/kernels.h"

#include "runtime/amx_tiles.h"
#include "runtime/dot_kernels.h"   // PINFER_X86
#include "runtime/dot_q8_blocks.h" // dotQ4SfIntAvx512
#include "runtime/f16_tiles.h"
#include "runtime/model.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace pinfer {

namespace {

// The widest kernel level this CPU runs: 2 AVX-512 F/BW/VL/VNNI (with
// AVX2, FMA, F16C), 1 AVX2 + FMA + F16C, 0 portable.
#ifdef PINFER_X86
int cpuKernelLevel() {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")))
    return 0;
  return __builtin_cpu_supports("avx512f") &&
                 __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512vnni")
             ? 2
             : 1;
}
#else
int cpuKernelLevel() { return 0; }
#endif

// The level `isa` asks for on this CPU.
int levelFor(KernelIsa isa) {
  const int cpu = cpuKernelLevel();
  return isa == KernelIsa::Auto   ? cpu
         : isa == KernelIsa::Avx2 ? std::min(cpu, 1)
                                  : 0;
}

// PINFER_KERNELS=avx2 or scalar caps the level (to compare kernels on one
// machine); unset or anything else: the CPU's widest.
int startLevel() {
  const char *cap = std::getenv("PINFER_KERNELS");
  return levelFor(cap && std::strcmp(cap, "avx2") == 0     ? KernelIsa::Avx2
                  : cap && std::strcmp(cap, "scalar") == 0 ? KernelIsa::Scalar
                                                           : KernelIsa::Auto);
}

std::atomic<int> gLevel{startLevel()};

// The kernels of `type`'s row for the level in use; null for a type without
// kernels.
const TypeKernels *kernelsOf(GGMLType type) {
  const TypeTraits *t = typeTraits(type);
  if (!t || !t->computable)
    return nullptr;
  return &t->kernelsAt(gLevel.load(std::memory_order_relaxed));
}

DotFn selectDot(GGMLType type) {
  const TypeKernels *k = kernelsOf(type);
  return k ? k->dot : nullptr;
}

} // namespace

void setKernelIsa(KernelIsa isa) { gLevel.store(levelFor(isa)); }

const char *kernelIsaName() {
  const int level = gLevel.load();
  return level == 2 ? "avx512vnni" : level == 1 ? "avx2" : "scalar";
}

bool kernelIsaIsAvx2() { return gLevel.load(std::memory_order_relaxed) >= 1; }

int kernelLevel() { return gLevel.load(std::memory_order_relaxed); }

DotFn dotKernel(GGMLType type) { return selectDot(type); }

float dotRow(GGMLType type, const void *row, const float *x, int64_t n) {
  DotFn fn = selectDot(type);
  return fn ? fn(row, x, n) : NAN;
}

void rowToF32(GGMLType type, const void *row, float *out, int64_t n) {
  const TypeTraits *t = typeTraits(type);
  if (t && t->computable)
    t->toF32(row, out, n);
  else
    std::fill_n(out, n, NAN);
}

namespace {

// The rows [r0, r1) of one product for `nTok` tokens, from f32 inputs or,
// when `xq` is set, from their quantised copies (w.cols/QK8_0 blocks per
// token, back to back).
void scalesFirstRows(const Weight &w, const float *x, int64_t xStride,
                     const BlockQ8Act *xq, float *y, int64_t yStride, int nTok,
                     int64_t r0, int64_t r1);

// Rows from which rowsKernel lays the activation out in pairs.
constexpr int64_t kPairRowsMin = 8;

// Q4_0 rows r0 .. r1 - 1 (stored scales first or in blocks) for a token
// or a few, each token's quantised activation prepared once for all the
// rows (Q4SfAct). Bitwise the blocks' products. False, with nothing
// written, for rows in blocks below the AVX-512 level (no prepared form
// there); rows stored scales first go back to blocks one by one there.
bool preparedQ4Rows(const Weight &w, const BlockQ8Act *xq, float *y,
                    int64_t yStride, int nTok, int64_t r0, int64_t r1) {
  static thread_local std::vector<Q4SfAct> buf;
  const Q4SfAct *prep = prepQ4SfActs(xq, w.cols, nTok, buf);
  if (!prep && !w.scalesFirst)
    return false;
  const int64_t nb = w.cols / QK8_0, pairs = q4SfActCount(w.cols);
  for (int64_t r = r0; r < r1; ++r)
    for (int t = 0; t < nTok; ++t) {
      const Q4SfAct *p = prep ? prep + t * pairs : nullptr;
      float &out = y[t * yStride + r];
      if (w.scalesFirst) {
        out = dotQ4Sf(w.row(r), xq + t * nb, p, w.cols);
        continue;
      }
#ifdef PINFER_X86
      out = dotk::dotQ4_0PrepIntAvx512(
          w.row(r), xq + t * nb,
          reinterpret_cast<const dotk::Q4SfActPair *>(p), w.cols);
#endif
    }
  return true;
}

// Q8_0 rows r0 .. r1 - 1 for a token or a few, each token's quantised
// activation prepared once for all the rows (prepQ8_0Act) and the rows
// taken four at a time: bitwise the blocks' products. False, with nothing
// written, below the AVX-512 level.
bool preparedQ8_0Rows(const Weight &w, const BlockQ8Act *xq, float *y,
                      int64_t yStride, int nTok, int64_t r0, int64_t r1) {
#ifdef PINFER_X86
  if (kernelLevel() != 2)
    return false;
  static thread_local std::vector<Q4SfAct> buf;
  const int64_t pairs = q4SfActCount(w.cols);
  buf.resize(size_t(nTok * pairs));
  auto *prep = reinterpret_cast<dotk::Q4SfActPair *>(buf.data());
  for (int t = 0; t < nTok; ++t)
    dotk::prepQ8_0Act(xq + t * (w.cols / QK8_0), w.cols, prep + t * pairs);
  float out[kRowsAtOnce];
  int64_t r = r0;
  for (; r + kRowsAtOnce <= r1; r += kRowsAtOnce)
    for (int t = 0; t < nTok; ++t) {
      dotk::dotQ8_0PrepRowsAvx512<kRowsAtOnce>(w.row(r), int64_t(w.rowBytes),
                                               prep + t * pairs, w.cols, out);
      for (int j = 0; j < kRowsAtOnce; ++j)
        y[t * yStride + r + j] = out[j];
    }
  for (; r < r1; ++r)
    for (int t = 0; t < nTok; ++t)
      dotk::dotQ8_0PrepRowsAvx512<1>(w.row(r), 0, prep + t * pairs, w.cols,
                                     y + t * yStride + r);
  return true;
#else
  (void)w, (void)xq, (void)y, (void)yStride, (void)nTok, (void)r0, (void)r1;
  return false;
#endif
}

void rowsKernel(const Weight &w, const float *x, int64_t xStride,
                const BlockQ8Act *xq, float *y, int64_t yStride, int nTok,
                int64_t r0, int64_t r1) {
  if (w.scalesFirst) {
    // Rows before scalesFirstFrom are blocks.
    const int64_t split = std::clamp(w.scalesFirstFrom, r0, r1);
    if (r0 < split) {
      Weight blocks = w;
      blocks.scalesFirst = false;
      rowsKernel(blocks, x, xStride, xq, y, yStride, nTok, r0, split);
    }
    if (split < r1)
      scalesFirstRows(w, x, xStride, xq, y, yStride, nTok, split, r1);
    return;
  }
  const int64_t nb = w.cols / QK8_0;
  // Sixteen rows by sixteen tokens per AMX tile multiply where the CPU has
  // them: bitwise the kernels below (runtime/amx_tiles.h); the tokens and
  // rows left over go the ways below.
  if (xq && nTok >= kAmxPadFrom && r1 - r0 >= kAmxRows && amxReads(w.type) &&
      tilesActive()) {
    static thread_local AmxActs acts;
    amxPrepare(xq, nb, nTok, acts);
    const int64_t rows = (r1 - r0) / kAmxRows * kAmxRows;
    const int tiled = acts.tokens;
    if (tiled > 0 && amxRows(w.type, w.row(r0), int64_t(w.rowBytes), rows, acts,
                             w.cols, y + r0, yStride)) {
      if (tiled < nTok)
        rowsKernel(w, x + tiled * xStride, xStride, xq + tiled * nb,
                   y + tiled * yStride, yStride, nTok - tiled, r0, r0 + rows);
      if (r0 + rows < r1)
        rowsKernel(w, x, xStride, xq, y, yStride, nTok, r0 + rows, r1);
      return;
    }
  }
  // F16 rows for a prompt's tokens: eight tokens per weight conversion,
  // bitwise the kernels below (runtime/f16_tiles.h).
  if (w.type == GGMLType::F16 && nTok >= kF16TileTokensMin &&
      f16TokenTiles(w.row(r0), int64_t(w.rowBytes), r1 - r0, x, xStride, nTok,
                    w.cols, y + r0, yStride))
    return;
  if (w.type == GGMLType::F16 && nTok < kF16TileTokensMin &&
      f16FewTokens(w.row(r0), int64_t(w.rowBytes), r1 - r0, x, xStride, nTok,
                   w.cols, y + r0, yStride))
    return;
  // Q4_0 rows for a token or a few: the activation prepared once for the
  // rows (as for rows stored scales first), which spares each row's
  // product the activation's rearranging and its offset's correction.
  if (xq && w.type == GGMLType::Q4_0 && nTok < kTokensAtOnce &&
      r1 - r0 >= kPairRowsMin && preparedQ4Rows(w, xq, y, yStride, nTok, r0, r1))
    return;
  // Q8_0 rows the same way, four at a time (four streams from memory).
  if (xq && w.type == GGMLType::Q8_0 && nTok < kTokensAtOnce &&
      r1 - r0 >= kPairRowsMin &&
      preparedQ8_0Rows(w, xq, y, yStride, nTok, r0, r1))
    return;
  const RowDot dot = xq ? rowDot(w.type) : rowDot(w.type).withF32Act();
  float out[kRowsAtOnce * kTokensAtOnce];
  int64_t r = r0;
  const int nTok4 = nTok - nTok % kTokensAtOnce;
  // Groups of kRowsAtOnce rows from r on take the whole batch's tokens (in
  // fours, `group(row, t)` filling out[] for rows r.. and tokens t..,
  // then the remainder one by one) before the next rows.
  auto rowGroups = [&](auto group) {
    for (; r + kRowsAtOnce <= r1; r += kRowsAtOnce) {
      for (int t = 0; t < nTok4; t += kTokensAtOnce) {
        group(w.row(r), t);
        for (int k = 0; k < kTokensAtOnce; ++k)
          for (int j = 0; j < kRowsAtOnce; ++j)
            y[(t + k) * yStride + r + j] = out[k * kRowsAtOnce + j];
      }
      for (int j = 0; j < kRowsAtOnce; ++j)
        for (int t = nTok4; t < nTok; ++t)
          y[t * yStride + r + j] = dot(w.row(r + j), x + t * xStride,
                                       xq ? xq + t * nb : nullptr, w.cols);
    }
  };
  // Where the type has a multi-row kernel: each activation block loaded
  // serves several rows. The same results as row by row.
  if (dot.hasRows() && nTok4 > 0)
    rowGroups([&](const uint8_t *row, int t) {
      dot.rows(row, w.rowBytes, x + t * xStride, xStride,
               xq ? xq + t * nb : nullptr, nb, w.cols, out);
    });
  // The quantised activation rearranged once for the rows that follow
  // (ActPairQ8), where the type reads that layout faster: a prompt's rows x
  // tokens, a generated token's rows one by one. A few rows do not pay
  // for it.
  static thread_local std::vector<ActPairQ8> pairs;
  static thread_local std::vector<float> scales;
  const int64_t np = nb / 2;
  const bool paired =
      xq && r1 - r >= kPairRowsMin &&
      ((dot.q8PairsRows && nTok4 > 0) || (dot.q8Pairs && nTok < kTokensAtOnce));
  if (paired)
    pairActivations(xq, nb, nTok, pairs, scales);
  if (paired && dot.q8PairsRows && nTok4 > 0)
    rowGroups([&](const uint8_t *row, int t) {
      dot.q8PairsRows(row, w.rowBytes, pairs.data() + t * np,
                      scales.data() + t * 2 * nb, np, w.cols, out);
    });
  if (paired && dot.q8Pairs && nTok < kTokensAtOnce) {
    for (; r < r1; ++r)
      for (int t = 0; t < nTok; ++t)
        y[t * yStride + r] = dot.q8Pairs(w.row(r), pairs.data() + t * np,
                                         scales.data() + t * 2 * nb, w.cols);
    return;
  }
  // A prompt's row unpacked once for all its tokens where the type can
  // (the same products).
  static thread_local std::vector<PreparedBlock> prepared;
  const bool prepares = dot.preparesFor(nTok);
  const RowDot rowKernels = prepares ? dot.prepared() : dot;
  if (prepares)
    prepared.resize(size_t(nb));
  for (; r < r1; ++r) {
    const uint8_t *row = w.row(r);
    if (prepares) {
      dot.prepare(row, w.cols, prepared.data());
      row = reinterpret_cast<const uint8_t *>(prepared.data());
    }
    int t = 0;
    // Tokens kTokensAtOnce at a time where the type has such a kernel:
    // the same results as one by one.
    if (rowKernels.hasX4())
      for (; t + kTokensAtOnce <= nTok; t += kTokensAtOnce) {
        rowKernels.x4(row, x + t * xStride, xStride, xq ? xq + t * nb : nullptr,
                      nb, w.cols, out);
        for (int k = 0; k < kTokensAtOnce; ++k)
          y[(t + k) * yStride + r] = out[k];
      }
    for (; t < nTok; ++t)
      y[t * yStride + r] =
          rowKernels(row, x + t * xStride, xq ? xq + t * nb : nullptr, w.cols);
  }
}

// rowsKernel for rows stored scales first (Weight::scalesFirst). One token
// or a few, with quantised activations: their own product, each token's
// activation prepared once for the rows. Prompts (kTokensAtOnce tokens or
// more) and f32 activations: kRowsAtOnce rows at a time back in blocks
// through the type's kernels, whose rows x tokens products outrun the
// scales-first one there. Bitwise the blocks' products either way.
void scalesFirstRows(const Weight &w, const float *x, int64_t xStride,
                     const BlockQ8Act *xq, float *y, int64_t yStride, int nTok,
                     int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / QK8_0;
  if (xq && nTok < kTokensAtOnce &&
      preparedQ4Rows(w, xq, y, yStride, nTok, r0, r1))
    return;
  // Sixteen rows at a time where the AMX tiles take them (as rowsKernel
  // does, the activation laid out for them once for all groups).
  const bool tiles =
      xq && nTok >= kAmxPadFrom && amxReads(w.type) && tilesActive();
  const int64_t group = tiles ? kAmxRows : kRowsAtOnce;
  static thread_local AmxActs acts;
  if (tiles)
    amxPrepare(xq, nb, nTok, acts);
  const int tiled = tiles ? acts.tokens : 0;
  static thread_local std::vector<uint8_t> blocks;
  blocks.resize(w.rowBytes * group);
  Weight some = w;
  some.scalesFirst = false;
  some.data = blocks.data();
  for (int64_t r = r0; r < r1; r += group) {
    const int64_t count = std::min<int64_t>(group, r1 - r);
    for (int64_t i = 0; i < count; ++i)
      scalesFirstToQ4_0(w.row(r + i), blocks.data() + i * w.rowBytes, nb);
    some.rows = count;
    if (tiled > 0 && count == kAmxRows &&
        amxRows(w.type, blocks.data(), int64_t(w.rowBytes), kAmxRows, acts,
                w.cols, y + r, yStride)) {
      if (tiled < nTok)
        rowsKernel(some, x + tiled * xStride, xStride, xq + tiled * nb,
                   y + tiled * yStride + r, yStride, nTok - tiled, 0, count);
      continue;
    }
    rowsKernel(some, x, xStride, xq, y + r, yStride, nTok, 0, count);
  }
}

void quantizeTokens(const float *x, int64_t xStride, int64_t cols, int nTok,
                    BlockQ8Act *out) {
  for (int t = 0; t < nTok; ++t)
    quantizeActQ8(x + t * xStride, out + t * (cols / QK8_0), cols);
}

} // namespace

void pairActivations(const BlockQ8Act *xq, int64_t nb, int nTok,
                     std::vector<ActPairQ8> &pairs, std::vector<float> &f) {
  assert(nb % 8 == 0);
  pairs.resize(size_t(nTok) * size_t(nb / 2));
  // (Whole groups of eight even where a caller broke the contract.)
  f.resize((size_t(nTok) * size_t(nb) + 7) / 8 * 16);
  for (int64_t i = 0; i < int64_t(nTok) * nb; ++i) {
    std::memcpy(pairs[size_t(i / 2)].qs + QK8_0 * (i % 2), xq[i].qs, QK8_0);
    // Eight blocks' scales, then their sums.
    float *group = f.data() + size_t(i / 8) * 16;
    group[i % 8] = xq[i].d;
    group[8 + i % 8] = xq[i].s;
  }
}

void matvecRows(const Weight &w, const float *x, int64_t xStride, float *y,
                int64_t yStride, int nTok, int64_t r0, int64_t r1,
                bool f32Act) {
  if (f32Act || !usesQ8Act(w.type)) {
    rowsKernel(w, x, xStride, nullptr, y, yStride, nTok, r0, r1);
    return;
  }
  static thread_local std::vector<BlockQ8Act> xq;
  xq.resize(size_t(nTok) * (w.cols / QK8_0));
  quantizeTokens(x, xStride, w.cols, nTok, xq.data());
  rowsKernel(w, x, xStride, xq.data(), y, yStride, nTok, r0, r1);
}

void matvecs(const MatvecJob *jobs, int nJobs, ThreadPool &pool, int nTok) {
  // The quantised inputs, one per distinct input (jobs that share an input
  // share its blocks), made before the parallel step. Reused across calls:
  // a token runs hundreds of products.
  static thread_local std::vector<BlockQ8Act> qbuf;
  static thread_local std::vector<int64_t> qOffset; // per job; -1: f32
  qOffset.assign(size_t(nJobs), -1);
  int64_t qTotal = 0;
  for (int j = 0; j < nJobs; ++j) {
    const MatvecJob &job = jobs[j];
    if (job.f32Act || !usesQ8Act(job.w->type))
      continue;
    for (int k = 0; k < j && qOffset[j] < 0; ++k)
      if (qOffset[k] >= 0 && jobs[k].x == job.x &&
          jobs[k].w->cols == job.w->cols && jobs[k].xStride == job.xStride)
        qOffset[j] = qOffset[k];
    if (qOffset[j] < 0) {
      qOffset[j] = qTotal;
      qTotal += int64_t(nTok) * (job.w->cols / QK8_0);
    }
  }
  if (int64_t(qbuf.size()) < qTotal)
    qbuf.resize(size_t(qTotal));
  // Offsets grow with the first job of each input: that job quantises it.
  for (int j = 0, next = 0; j < nJobs; ++j) {
    const MatvecJob &job = jobs[j];
    if (qOffset[j] != next)
      continue;
    quantizeTokens(job.x, job.xStride ? job.xStride : job.w->cols, job.w->cols,
                   nTok, qbuf.data() + next);
    next += int(int64_t(nTok) * (job.w->cols / QK8_0));
  }
  const BlockQ8Act *q = qbuf.data();
  const int64_t *offsets = qOffset.data();

  int64_t total = 0;
  for (int j = 0; j < nJobs; ++j)
    total += jobs[j].w->rows;
  // Rows of all jobs are numbered one after the other; each thread takes a
  // contiguous slice of that numbering, which may span jobs. Slices are
  // whole groups of 16 rows (64 bytes of f32 output) so that, within a job
  // that starts on a group, two threads never write one cache line of y.
  const int64_t kGroup = 16;
  pool.parallelFor((total + kGroup - 1) / kGroup, [&](int64_t g0, int64_t g1) {
    const int64_t begin = g0 * kGroup, end = std::min(g1 * kGroup, total);
    int64_t base = 0;
    for (int j = 0; j < nJobs && begin < end; ++j) {
      const MatvecJob &job = jobs[j];
      int64_t lo = std::max(begin, base), hi = std::min(end, base + job.w->rows);
      if (lo < hi)
        rowsKernel(*job.w, job.x, job.xStride ? job.xStride : job.w->cols,
                   offsets[j] >= 0 ? q + offsets[j] : nullptr, job.y,
                   job.yStride ? job.yStride : job.w->rows, nTok, lo - base,
                   hi - base);
      base += job.w->rows;
    }
  });
}

bool prepQ4SfAct(const BlockQ8Act *xq, int64_t n, Q4SfAct *out) {
#ifdef PINFER_X86
  static_assert(sizeof(Q4SfAct) == sizeof(dotk::Q4SfActPair) &&
                    alignof(Q4SfAct) == alignof(dotk::Q4SfActPair),
                "Q4SfAct holds one Q4SfActPair");
  if (kernelLevel() == 2) {
    dotk::prepQ4SfAct(xq, n, reinterpret_cast<dotk::Q4SfActPair *>(out));
    return true;
  }
#endif
  (void)xq, (void)n, (void)out;
  return false;
}

const Q4SfAct *prepQ4SfActs(const BlockQ8Act *xq, int64_t n, int nTok,
                            std::vector<Q4SfAct> &out) {
  const int64_t pairs = q4SfActCount(n);
  out.resize(size_t(nTok * pairs));
  for (int t = 0; t < nTok; ++t)
    if (!prepQ4SfAct(xq + t * (n / QK8_0), n, out.data() + t * pairs))
      return nullptr;
  return out.data();
}

float dotQ4Sf(const uint8_t *row, const BlockQ8Act *xq, const Q4SfAct *prep,
              int64_t n) {
#ifdef PINFER_X86
  if (prep)
    return dotk::dotQ4SfIntAvx512(
        row, xq, reinterpret_cast<const dotk::Q4SfActPair *>(prep), n);
#endif
  // Below the AVX-512 level: the row back in blocks, the type's product.
  static thread_local std::vector<uint8_t> blocks;
  blocks.resize(rowBytes(GGMLType::Q4_0, n));
  scalesFirstToQ4_0(row, blocks.data(), n / QK8_0);
  return rowDot(GGMLType::Q4_0).q8(blocks.data(), xq, n);
}

void packActQ8(const BlockQ8Act *xq, float *out, int64_t n) {
  auto *q = reinterpret_cast<int8_t *>(out);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    std::memcpy(q + b * QK8_0, xq[b].qs, QK8_0);
    std::memcpy(q + n + b * int64_t(sizeof(float)), &xq[b].d, sizeof(float));
  }
}

namespace {

#ifdef PINFER_X86
// quantizeActQ8's numbers eight lanes at a time: the maximum of |x| is
// exact in any order, the product x * inv is the same single rounding, and
// the conversion rounds to nearest even as lrint does (the default MXCSR).
PINFER_AVX2 void quantizeActQ8Avx2(const float *x, BlockQ8Act *out, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t blk = 0; blk < n / QK8_0; ++blk, x += QK8_0) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k)
      v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]),
                                                 _mm256_andnot_ps(sign, v[1])),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v[2]),
                                                 _mm256_andnot_ps(sign, v[3])));
    __m128 h =
        _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127.f;
    const float inv = d > 0 ? 1.f / d : 0.f;
    out[blk].d = d;
    const __m256 iv = _mm256_set1_ps(inv);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], iv));
    // |q| <= 127: the saturating packs keep every value; they interleave
    // 128-bit lanes, which the permutation undoes.
    const __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]),
                           _mm256_packs_epi32(q[2], q[3])),
        order);
    _mm256_storeu_si256((__m256i *)out[blk].qs, bytes);
    const __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                        _mm256_add_epi32(q[2], q[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s4),
                              _mm256_extracti128_si256(s4, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    out[blk].s = d * float(_mm_cvtsi128_si32(s));
  }
}
#endif

} // namespace

void quantizeActQ8(const float *x, BlockQ8Act *out, int64_t n) {
#ifdef PINFER_X86
  if (kernelLevel() >= 1) {
    quantizeActQ8Avx2(x, out, n);
    return;
  }
#endif
  for (int64_t blk = 0; blk < n / QK8_0; ++blk, x += QK8_0) {
    float amax = 0;
    for (int j = 0; j < QK8_0; ++j)
      amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float inv = d > 0 ? 1.f / d : 0.f;
    out[blk].d = d;
    int sum = 0;
    for (int j = 0; j < QK8_0; ++j) {
      out[blk].qs[j] = int8_t(std::lrint(x[j] * inv));
      sum += out[blk].qs[j];
    }
    out[blk].s = d * float(sum);
  }
}

DotQ8ActFn dotQ8ActKernel(GGMLType type) {
  const TypeKernels *k = kernelsOf(type);
  return k ? k->dotQ8 : nullptr;
}

RowDot rowDot(GGMLType type) {
  const TypeKernels *k = kernelsOf(type);
  if (!k)
    return RowDot{};
  return RowDot{k->dotQ8,          k->dot,           k->dotQ84,
                k->dot4,           k->dotQ8Rows,     k->dotRows,
                k->dotQ8PairsRows, k->dotQ8Pairs,    k->prepareRow,
                k->dotQ8Prepared,  k->dotQ84Prepared};
}

void rmsNorm(float *out, const float *x, const float *w, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i)
    ss += double(x[i]) * x[i];
  float scale = float(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i)
    out[i] = x[i] * scale * w[i];
}

void softmax(float *x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i)
    mx = std::max(mx, x[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = float(1.0 / sum);
  for (int i = 0; i < n; ++i)
    x[i] *= inv;
}

void ropeInvFreq(float *invFreq, int nRot, float base) {
  for (int i = 0; i < nRot / 2; ++i)
    invFreq[i] = float(std::pow(double(base), -2.0 * i / nRot));
}

void rope(float *vec, int nHeads, int headDim, int nRot, int pos,
          const float *invFreq, RopeStyle style) {
  // The two elements of pair i: adjacent, or half the rotated span apart.
  const int first = style == RopeStyle::Neox ? 1 : 2;
  const int second = style == RopeStyle::Neox ? nRot / 2 : 1;
  for (int i = 0; i < nRot / 2; ++i) {
    double theta = double(pos) * invFreq[i];
    float c = float(std::cos(theta)), s = float(std::sin(theta));
    for (int h = 0; h < nHeads; ++h) {
      float *v = vec + int64_t(h) * headDim + first * i;
      float x0 = v[0], x1 = v[second];
      v[0] = x0 * c - x1 * s;
      v[second] = x0 * s + x1 * c;
    }
  }
}

namespace {

#ifdef PINFER_X86
PINFER_AVX2 inline __m256 halves8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}

// exp(x) for x <= 0 (softmax's x - max), eight at a time: x = n ln2 + r,
// |r| <= ln2 / 2, exp(r) by its degree-6 Taylor polynomial (relative error
// under 2e-7), 2^n into the exponent; 0 below -87.
PINFER_AVX2 inline __m256 expNonPositive8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2 in two steps (ln2's high part is exact in n * hi).
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(under, y);
}

// softmax in place, the exponentials eight at a time, their sum in double.
PINFER_AVX2 void softmaxAvx2(float *x, int n) {
  __m256 m8 = _mm256_set1_ps(x[0]);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
  float mx = x[0];
  for (int k = i; k < n; ++k)
    mx = std::max(mx, x[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m8);
  for (float l : lanes)
    mx = std::max(mx, l);
  const __m256 mv = _mm256_set1_ps(mx);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = expNonPositive8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (i < n) {
    // The tail as a padded vector of the same function: every element's
    // exponential is the same whichever lane it falls in.
    alignas(32) float t[8];
    for (int k = 0; k < 8; ++k)
      t[k] = i + k < n ? x[i + k] - mx : -100.f;
    _mm256_store_ps(t, expNonPositive8(_mm256_load_ps(t)));
    for (int k = 0; i + k < n; ++k)
      x[i + k] = t[k];
    const __m256 e = _mm256_load_ps(t);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double d[4];
  _mm256_store_pd(d, _mm256_add_pd(s0, s1));
  const __m256 inv =
      _mm256_set1_ps(float(1.0 / ((d[0] + d[1]) + (d[2] + d[3]))));
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i)
    x[i] *= _mm256_cvtss_f32(inv);
}

// n halves into row (32-byte aligned), exactly.
PINFER_AVX2 inline void halvesToF32(const uint16_t *h, float *row, int n) {
  int d = 0;
  for (; d + 8 <= n; d += 8)
    _mm256_store_ps(row + d, halves8(h + d));
  for (; d < n; ++d)
    row[d] = dotk::halfToFloat(h[d]);
}

// Four queries' scores against sixteen keys, transposed (element d of key
// j0 + k at kT[d * ldk + j0 + k]): each score one chain of FMAs over d in
// order, whatever the keys and queries around it, so a score is the same
// in any tile, block or chunk. No horizontal sums: lane k is key j0 + k.
PINFER_AVX2 inline void scoreTile(const float *kT, int ldk, int j0, int headDim,
                                  const float *const *q, __m256 a[4][2]) {
  // Accumulators in registers (not in `a`, which the compiler would keep
  // in memory across the loop).
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
         c21 = c00, c30 = c00, c31 = c00;
  const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
  for (int d = 0; d < headDim; ++d) {
    const float *k = kT + int64_t(d) * ldk + j0;
    const __m256 k0 = _mm256_load_ps(k), k1 = _mm256_load_ps(k + 8);
    __m256 qb = _mm256_broadcast_ss(q0 + d);
    c00 = _mm256_fmadd_ps(k0, qb, c00);
    c01 = _mm256_fmadd_ps(k1, qb, c01);
    qb = _mm256_broadcast_ss(q1 + d);
    c10 = _mm256_fmadd_ps(k0, qb, c10);
    c11 = _mm256_fmadd_ps(k1, qb, c11);
    qb = _mm256_broadcast_ss(q2 + d);
    c20 = _mm256_fmadd_ps(k0, qb, c20);
    c21 = _mm256_fmadd_ps(k1, qb, c21);
    qb = _mm256_broadcast_ss(q3 + d);
    c30 = _mm256_fmadd_ps(k0, qb, c30);
    c31 = _mm256_fmadd_ps(k1, qb, c31);
  }
  a[0][0] = c00, a[0][1] = c01, a[1][0] = c10, a[1][1] = c11;
  a[2][0] = c20, a[2][1] = c21, a[3][0] = c30, a[3][1] = c31;
}

// og += the weighted value rows j = 0 .. nb - 1 (rows hp apart, weights
// sg[j]), each element adding them in order, the sums in registers.
PINFER_AVX2 inline void addWeighted(float *og, const float *sg,
                                    const float *rows, int nb, int hp,
                                    int headDim, int d8) {
  int d = 0;
  for (; d + 64 <= d8; d += 64) {
    __m256 c[8];
    for (int k = 0; k < 8; ++k)
      c[k] = _mm256_loadu_ps(og + d + 8 * k);
    for (int j = 0; j < nb; ++j) {
      const __m256 a = _mm256_broadcast_ss(sg + j);
      const float *row = rows + j * hp + d;
      for (int k = 0; k < 8; ++k)
        c[k] = _mm256_fmadd_ps(a, _mm256_load_ps(row + 8 * k), c[k]);
    }
    for (int k = 0; k < 8; ++k)
      _mm256_storeu_ps(og + d + 8 * k, c[k]);
  }
  for (; d < d8; d += 8) {
    __m256 c = _mm256_loadu_ps(og + d);
    for (int j = 0; j < nb; ++j)
      c = _mm256_fmadd_ps(_mm256_broadcast_ss(sg + j),
                          _mm256_load_ps(rows + j * hp + d), c);
    _mm256_storeu_ps(og + d, c);
  }
  for (; d < headDim; ++d)
    for (int j = 0; j < nb; ++j)
      og[d] += sg[j] * rows[j * hp + d];
}

// attendChunk over the f16 cache: the key and value rows converted a block
// at a time (16 KB) for every token and head of the call that reads them;
// each score and each output element is computed as attendHead computes it
// alone (block boundaries change no operation's order).
PINFER_AVX2 void attendChunkAvx2(const AttendChunk &c) {
  const int headDim = c.headDim;
  const float scale = 1.f / std::sqrt(float(headDim));
  const int d8 = headDim & ~7, hp = (headDim + 7) & ~7;
  // A block of rows: values converted (rows hp apart), keys converted and
  // transposed (kT, ldk apart, zero past the block's last key).
  alignas(32) float rows[4096];
  alignas(32) float kT[4096 + 16 * 1024];
  const int block = std::max(1, 4096 / hp);
  auto firstOf = [&](int t) {
    const int end = c.pos0 + t + 1;
    return c.window > 0 ? std::max(0, end - c.window) : 0;
  };
  // Token t's keys in the block of nb from pb: [keysFrom, keysTo).
  auto keysFrom = [&](int t, int pb) { return std::max(pb, firstOf(t)); };
  auto keysTo = [&](int t, int pb, int nb) {
    return std::min(pb + nb, c.pos0 + t + 1);
  };
  const int lo = firstOf(c.t0), hi = c.pos0 + c.t1;
  // The queries with keys in the block: their query, score row (indexed by
  // position) and key range [ja, jb).
  struct Query {
    const float *q;
    float *s;
    int ja, jb;
  };
  static thread_local std::vector<Query> qs;
  for (int pb = lo; pb < hi; pb += block) {
    const int nb = std::min(block, hi - pb), ldk = (nb + 15) & ~15;
    for (int j = 0; j < nb; ++j) {
      halvesToF32(c.keys + int64_t(pb + j) * c.stride, rows, headDim);
      for (int d = 0; d < headDim; ++d)
        kT[int64_t(d) * ldk + j] = rows[d];
    }
    for (int d = 0; d < headDim; ++d)
      std::fill(kT + int64_t(d) * ldk + nb, kT + int64_t(d) * ldk + ldk, 0.f);
    qs.clear();
    for (int t = c.t0; t < c.t1; ++t) {
      const int ft = firstOf(t), ja = keysFrom(t, pb), jb = keysTo(t, pb, nb);
      if (ja >= jb)
        continue;
      for (int g = 0; g < c.nHeads; ++g)
        qs.push_back(
            {c.q + t * c.qStride + g * headDim,
             c.scores + t * c.scoreTokStride + g * c.scoreHeadStride - ft,
             ja - pb, jb - pb});
    }
    // Four queries at a time (the last four padded with the last query),
    // over the sixteen-key groups any of them needs.
    for (size_t i = 0; i < qs.size(); i += 4) {
      const Query *g4[4];
      int from = nb, to = 0;
      for (int k = 0; k < 4; ++k) {
        g4[k] = &qs[std::min(i + k, qs.size() - 1)];
        from = std::min(from, g4[k]->ja);
        to = std::max(to, g4[k]->jb);
      }
      const float *q4[4] = {g4[0]->q, g4[1]->q, g4[2]->q, g4[3]->q};
      for (int j0 = from & ~15; j0 < to; j0 += 16) {
        __m256 a[4][2];
        scoreTile(kT, ldk, j0, headDim, q4, a);
        for (int k = 0; k < 4 && i + k < qs.size(); ++k) {
          const Query &qq = *g4[k];
          float *s = qq.s + pb + j0;
          const __m256 s0 = _mm256_mul_ps(a[k][0], _mm256_set1_ps(scale)),
                       s1 = _mm256_mul_ps(a[k][1], _mm256_set1_ps(scale));
          if (qq.ja <= j0 && j0 + 16 <= qq.jb) {
            _mm256_storeu_ps(s, s0);
            _mm256_storeu_ps(s + 8, s1);
            continue;
          }
          alignas(32) float lane[16];
          _mm256_store_ps(lane, s0);
          _mm256_store_ps(lane + 8, s1);
          for (int l = std::max(0, qq.ja - j0); l < std::min(16, qq.jb - j0);
               ++l)
            s[l] = lane[l];
        }
      }
    }
  }
  for (int t = c.t0; t < c.t1; ++t)
    for (int g = 0; g < c.nHeads; ++g) {
      softmaxAvx2(c.scores + t * c.scoreTokStride + g * c.scoreHeadStride,
                  c.pos0 + t + 1 - firstOf(t));
      std::fill_n(c.out + t * c.outStride + g * headDim, headDim, 0.f);
    }
  for (int pb = lo; pb < hi; pb += block) {
    const int nb = std::min(block, hi - pb);
    for (int j = 0; j < nb; ++j)
      halvesToF32(c.values + int64_t(pb + j) * c.stride, rows + j * hp,
                  headDim);
    for (int t = c.t0; t < c.t1; ++t) {
      const int ft = firstOf(t), ja = keysFrom(t, pb), jb = keysTo(t, pb, nb);
      if (ja >= jb)
        continue;
      for (int g = 0; g < c.nHeads; ++g)
        addWeighted(c.out + t * c.outStride + g * headDim,
                    c.scores + t * c.scoreTokStride + g * c.scoreHeadStride -
                        ft + ja,
                    rows + (ja - pb) * hp, jb - ja, hp, headDim, d8);
    }
  }
}

PINFER_AVX2 void storeF16Avx2(const float *x, uint16_t *out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        reinterpret_cast<__m128i *>(out + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i)
    out[i] = f32ToFp16(x[i]);
}
#endif

} // namespace

void attendChunk(const AttendChunk &c) {
#ifdef PINFER_X86
  if (kernelLevel() >= 1 && c.headDim <= 1024) {
    attendChunkAvx2(c);
    return;
  }
#endif
  const int headDim = c.headDim;
  const float scale = 1.f / std::sqrt(float(headDim));
  for (int t = c.t0; t < c.t1; ++t) {
    const int end = c.pos0 + t + 1;
    const int first = c.window > 0 ? std::max(0, end - c.window) : 0;
    for (int g = 0; g < c.nHeads; ++g) {
      const float *qg = c.q + t * c.qStride + g * headDim;
      float *sg = c.scores + t * c.scoreTokStride + g * c.scoreHeadStride;
      float *og = c.out + t * c.outStride + g * headDim;
      for (int j = first; j < end; ++j) {
        const uint16_t *k = c.keys + j * c.stride;
        float sum = 0.f;
        for (int d = 0; d < headDim; ++d)
          sum += fp16ToF32(k[d]) * qg[d];
        sg[j - first] = sum * scale;
      }
      softmax(sg, end - first);
      std::fill_n(og, headDim, 0.f);
      for (int j = first; j < end; ++j) {
        const uint16_t *v = c.values + j * c.stride;
        const float a = sg[j - first];
        for (int d = 0; d < headDim; ++d)
          og[d] += a * fp16ToF32(v[d]);
      }
    }
  }
}

void attendHead(const float *q, const uint16_t *keys, const uint16_t *values,
                int64_t stride, int nPos, int headDim, float *scores,
                float *out) {
  // One token at position nPos - 1 that sees every row from `keys` on.
  AttendChunk c;
  c.q = q;
  c.keys = keys;
  c.values = values;
  c.stride = stride;
  c.headDim = headDim;
  c.pos0 = nPos - 1;
  c.t0 = 0;
  c.t1 = 1;
  c.scores = scores;
  c.out = out;
  attendChunk(c);
}

void storeF16(const float *x, uint16_t *out, int64_t n) {
#ifdef PINFER_X86
  // F16C rounds to nearest even as f32ToFp16 does: the same halves.
  if (kernelLevel() >= 1) {
    storeF16Avx2(x, out, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i)
    out[i] = f32ToFp16(x[i]);
}

} // namespace pinfer
