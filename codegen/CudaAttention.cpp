// Emits a layer's attention kernels; see CudaAttention.h. Each mirrors the
// CPU routine of the dense reference it replaces (runtime/forward.cpp,
// attentionCore; runtime/kernels.cpp, rmsNorm, rope, attendHead, softmax),
// so that the two devices compute alike up to the order of float sums.
#include "codegen/CudaAttention.h"

#include "codegen/SourceText.h"
#include "runtime/gpu_attention.h"

#include <cstdlib>

namespace pinfer {

namespace {

const char *kHelpers = R"(
// Block-wide max and sum over blockDim.x threads (a multiple of 32): every
// thread reaches the barriers and gets the result.
__device__ __forceinline__ float pf_block_max(float v, float *red) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < (int)(blockDim.x >> 5); ++w) r = fmaxf(r, red[w]);
  return r;
}
__device__ __forceinline__ float pf_block_sum(float v, float *red) {
  v = pf_warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < (int)(blockDim.x >> 5); ++w) r += red[w];
  return r;
}
)";

// The CUDA suffix of a computable type (its pf_dot_ helper).
const char *suffix(GGMLType t) {
  const TypeTraits *row = typeTraits(t);
  return row && row->computable ? row->cudaSuffix : "f32";
}

} // namespace

void emitQuant(std::ostream &os, const std::string &name, int64_t n) {
  using gpuattn::kQuantBlock;
  os << "extern \"C\" __global__ void __launch_bounds__(" << kQuantBlock << ") "
     << name << "(const float *x, float *xq, int nTok) {\n"
     << "  constexpr int kN = " << n << "; // per token\n"
     << "  constexpr int kPer = " << (n + kQuantBlock - 1) / kQuantBlock
     << ";\n"
     << "  // One block per token, which reads every value before it writes\n"
     << "  // any: xq may be x.\n"
     << "  const float *xt = x + (long)blockIdx.x * kN;\n"
     << "  signed char *q = reinterpret_cast<signed char *>(xq + "
        "(long)blockIdx.x * kN);\n"
     << "  float *dq = reinterpret_cast<float *>(q + kN);\n"
     << "  float v[kPer];\n"
     << "#pragma unroll\n"
     << "  for (int k = 0; k < kPer; ++k) {\n"
     << "    const int i = threadIdx.x + k * " << kQuantBlock << ";\n"
     << "    v[k] = i < kN ? xt[i] : 0.f;\n"
     << "  }\n"
     << "  __syncthreads();\n"
     << "#pragma unroll\n"
     << "  for (int k = 0; k < kPer; ++k) {\n"
     << "    const int i = threadIdx.x + k * " << kQuantBlock << ";\n"
     << "    if (i >= kN) break; // whole warps: kN is a multiple of 32\n"
     << "    float amax = fabsf(v[k]);\n"
     << "    for (int o = 16; o > 0; o >>= 1)\n"
     << "      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));\n"
     << "    const float d = amax / 127.f;\n"
     << "    const float inv = d > 0.f ? 1.f / d : 0.f;\n"
     << "    q[i] = (signed char)(int)rintf(v[k] * inv);\n"
     << "    if ((i & 31) == 0) dq[i >> 5] = d;\n"
     << "  }\n"
     << "}\n";
}

namespace {

// How a type's 32-value block meets the floats in a tile (pf_tile): one
// scale or a scale per 16-value half, and whether a min term multiplies
// the tokens' sums: the decoder's groups and mins, as the type table's
// SplitK traits describe them (Q8_0/Q4_0: neither).
struct TileForm {
  bool halves, mins;
};
TileForm tileForm(GGMLType type) {
  const TypeTraits *t = typeTraits(type);
  if (!t)
    return {false, false};
  return {t->splitK.group == 16, t->splitK.mins};
}

// A tile body's shape and rows: `listed` of them, row i of the warp's 16
// at rowOf(r0 + i); ra and rb those of lanes' rows g and g + 8.
void emitTileRows(std::ostream &os, int64_t rows, int64_t cols,
                  const std::string &list, bool wholeBlocks = false) {
  os << "  constexpr int kRows = " << rows << ", kCols = " << cols << ";\n"
     << "  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;\n"
     << "  const int r0 = (blockIdx.x * 4 + (threadIdx.x >> 5)) * 16;\n";
  if (list.empty())
    os << "  const int listed = kRows;\n"
       << "  auto rowOf = [](int i) { return i; };\n";
  else
    os << "  // The warps' rows: entries of the list (its length first).\n"
       << "  const unsigned *const rowList = " << list << ";\n"
       << "  const int listed = (int)rowList[0];\n"
       << "  auto rowOf = [rowList](int i) { return (int)rowList["
       << gpuattn::kPickListAt << " + i]; };\n";
  // A kernel with barriers keeps a block's warps past the list to the
  // end (their rows are the last one's, their sums not stored).
  os << (wholeBlocks ? "  if (blockIdx.x * 64 >= listed) return; // whole "
                       "blocks\n"
                     : "  if (r0 >= listed) return; // whole warps\n")
     << "  // Rows past the last read the last row; their sums are not "
        "stored.\n"
     << "  const int ra = rowOf(r0 + g < listed ? r0 + g : listed - 1);\n"
     << "  const int rb = rowOf(r0 + g + 8 < listed ? r0 + g + 8 : listed - "
        "1);\n";
}

// A pass over the next 8 * kGroups tokens (`groups` groups of 8 of them
// here) and its sums, acc<i>[group][C fragment element] of operand i.
void emitTilePass(std::ostream &os, size_t nOps) {
  os << "#pragma unroll 1\n"
     << "  for (int t0 = 0; t0 < nTok; t0 += 8 * kGroups) {\n"
     << "    const int groups = nTok - t0 >= 8 * kGroups ? kGroups : (nTok - "
        "t0 + 7) / 8;\n";
  for (size_t i = 0; i < nOps; ++i)
    os << "    float acc" << i << "[kGroups][4] = {};\n";
}

// After a pass's steps: `store` for each (row, token) of the C fragments,
// operand i's sum in v<i>.
void emitTileStores(std::ostream &os, size_t nOps, const std::string &store) {
  os << "#pragma unroll\n"
     << "    for (int G = 0; G < kGroups; ++G)\n"
     << "#pragma unroll\n"
     << "      for (int e = 0; e < 4; ++e) {\n"
     << "        const int i = r0 + g + (e >> 1) * 8, t = t0 + 8 * G + 2 * "
        "t4 + (e & 1);\n"
     << "        if (i >= listed || t >= nTok) continue;\n"
     << "        const int r = rowOf(i);\n";
  for (size_t i = 0; i < nOps; ++i)
    os << "        const float v" << i << " = acc" << i << "[G][e];\n";
  os << store << "      }\n";
}

// The tiles of f16 and bfloat16 rows (cols a multiple of 16;
// emitTileBody's contract): per step of 16 values a warp loads its 16
// rows' halves of each operand once (A fragments straight from the rows),
// and each group of 8 tokens' f32 values, split into parts of the rows'
// type, multiplies them on tensor cores: f16, two parts at a power-of-two
// scale (pf_split_f16: 22 bits of each value, as near f32's 24 as two
// products get), the step's sum then times 1 / scale; bfloat16, three
// parts of f32's range (pf_split_bf16: all 24 bits). The split is the
// same for every warp of a block (the same tokens and values), so the
// block's four warps split four steps' values once, one step each, into
// shared memory, and each reads the B fragments of the four there: a
// quarter of the conversions each warp made when it split every step
// itself.
void emitTileBodyHalf(std::ostream &os, int64_t rows, int64_t cols,
                      const std::vector<TileOperand> &ops, int groups,
                      const std::string &store, const std::string &list) {
  const bool bf16 = ops[0].type == GGMLType::BF16;
  const int warps = int(gpuattn::kTileBlock / 32);
  emitTileRows(os, rows, cols, list, true);
  os << "  constexpr int kGroups = " << groups << ", kWarps = " << warps
     << ";\n"
     << "  const int warp = threadIdx.x >> 5;\n";
  // A lane's B fragments of one step and group: f16's two parts and the
  // inverse scales of its C columns' tokens, or bfloat16's three parts.
  if (bf16)
    os << "  struct Frag { unsigned p[3][2]; };\n";
  else
    os << "  struct Frag { unsigned p[2][2]; float inv[2]; };\n";
  os << "  __shared__ Frag frags[kGroups][kWarps][32];\n";
  for (size_t i = 0; i < ops.size(); ++i)
    os << "  const unsigned *rowA" << i
       << " = reinterpret_cast<const unsigned *>(" << ops[i].matrix
       << " + (long)ra * (2 * kCols)) + t4;\n"
       << "  const unsigned *rowB" << i
       << " = reinterpret_cast<const unsigned *>(" << ops[i].matrix
       << " + (long)rb * (2 * kCols)) + t4;\n";
  emitTilePass(os, ops.size());
  os << "    // Token t0 + g's values 2t.. (8-aligned); group G's 8G tokens "
        "on.\n"
     << "    const float *xg = x + (long)(t0 + g) * kCols + 2 * t4;\n"
     << "    const int here = nTok - t0 - g;\n"
     << "#pragma unroll 1\n"
     << "    for (int kb = 0; kb < kCols; kb += 16 * kWarps) {\n"
     << "      // Warp w splits step kb + 16w for every group; the barrier "
        "after\n"
     << "      // the steps keeps the last ones' readers ahead of these "
        "writes.\n"
     << "      const int ks = kb + 16 * warp;\n"
     << "      if (ks < kCols) {\n"
     << "#pragma unroll\n"
     << "        for (int G = 0; G < kGroups; ++G) {\n"
     << "          if (G >= groups) break; // the block's lanes together\n"
     << "          float v[4] = {0.f, 0.f, 0.f, 0.f};\n"
     << "          if (8 * G < here) {\n"
     << "            const float *xv = xg + 8L * G * kCols + ks;\n"
     << "            const pf_f2 p = pf_ldf2(xv), q = pf_ldf2(xv + 8);\n"
     << "            v[0] = p.x;\n"
     << "            v[1] = p.y;\n"
     << "            v[2] = q.x;\n"
     << "            v[3] = q.y;\n"
     << "          }\n"
     << "          Frag &f = frags[G][warp][lane];\n"
     << (bf16 ? "          pf_split_bf16(v, f.p);\n"
              : "          pf_split_f16(v, f.p[0], f.p[1], f.inv);\n")
     << "        }\n"
     << "      }\n"
     << "      __syncthreads();\n"
     << "      const int steps = kCols - kb < 16 * kWarps ? (kCols - kb) / 16 "
        ": kWarps;\n"
     << "#pragma unroll 1\n"
     << "      for (int j = 0; j < steps; ++j) {\n"
     << "        const int k0 = kb + 16 * j;\n"
     << "        // Values k0 + 2t, + 1 and k0 + 8 + 2t, + 1 of rows g, g + "
        "8.\n";
  for (size_t i = 0; i < ops.size(); ++i) {
    const std::string n = std::to_string(i);
    os << "        const unsigned a" << n << "[4] = {rowA" << n
       << "[k0 / 2], rowB" << n << "[k0 / 2], rowA" << n << "[k0 / 2 + 4], rowB"
       << n << "[k0 / 2 + 4]};\n";
  }
  os << "#pragma unroll\n"
     << "        for (int G = 0; G < kGroups; ++G) {\n"
     << "          if (G >= groups) break;\n"
     << "          const Frag f = frags[G][j][lane];\n";
  for (size_t i = 0; i < ops.size(); ++i) {
    const std::string n = std::to_string(i);
    os << "          {\n"
       << "            float c[4] = {0.f, 0.f, 0.f, 0.f};\n";
    for (int k = 0; k < (bf16 ? 3 : 2); ++k)
      os << "            pf_mma_" << (bf16 ? "bf16" : "f16") << "(c, a" << n
         << ", f.p[" << k << "]);\n";
    os << "#pragma unroll\n"
       << "            for (int e = 0; e < 4; ++e) acc" << n
       << "[G][e] += " << (bf16 ? "c[e]" : "c[e] * f.inv[e & 1]") << ";\n"
       << "          }\n";
  }
  os << "        }\n"
     << "      }\n"
     << "      __syncthreads();\n"
     << "    }\n";
  emitTileStores(os, ops.size(), store);
  os << "  }\n";
}

} // namespace

bool tileHalves(GGMLType type) { return tileForm(type).halves; }

void emitTileBody(std::ostream &os, int64_t rows, int64_t cols,
                  const std::vector<TileOperand> &ops, int groups,
                  const std::string &store, const std::string &list) {
  if (ops[0].type == GGMLType::F16 || ops[0].type == GGMLType::BF16)
    return emitTileBodyHalf(os, rows, cols, ops, groups, store, list);
  bool mins = false, halfMins = false;
  for (const TileOperand &op : ops) {
    mins |= tileForm(op.type).mins;
    halfMins |= tileForm(op.type).mins && tileForm(op.type).halves;
  }
  emitTileRows(os, rows, cols, list);
  for (size_t i = 0; i < ops.size(); ++i)
    os << "  const u8 *rowA" << i << " = " << ops[i].matrix << " + (long)ra * "
       << rowBytes(ops[i].type, cols) << ", *rowB" << i << " = "
       << ops[i].matrix << " + (long)rb * " << rowBytes(ops[i].type, cols)
       << ";\n";
  os << "  // A token's 8-bit values, then its scales (packActQ8), kCols "
        "floats apart.\n"
     << "  const u8 *xq = reinterpret_cast<const u8 *>(x);\n"
     << "  constexpr long kTok = 4L * kCols;\n"
     << "  constexpr int kGroups = " << groups << ";\n";
  if (mins)
    os << "  // Ones as A: the tokens' sums of their values (for the mins).\n"
       << "  const unsigned kOnes[4] = {0x01010101u, 0x01010101u, "
       << (halfMins ? "0u, 0u" : "0x01010101u, 0x01010101u") << "};\n";
  if (halfMins)
    os << "  const unsigned kOnesHi[4] = {0u, 0u, 0x01010101u, "
          "0x01010101u};\n";
  emitTilePass(os, ops.size());
  os << "#pragma unroll 1\n"
     << "    for (int blk = 0; blk < kCols / 32; ++blk) {\n";
  for (size_t i = 0; i < ops.size(); ++i)
    os << "      pf_tile p" << i << ";\n"
       << "      pf_tile_" << typeTraits(ops[i].type)->cudaSuffix << "(rowA"
       << i << ", rowB" << i << ", blk, t4, p" << i << ");\n";
  os << "#pragma unroll\n"
     << "      for (int G = 0; G < kGroups; ++G) {\n"
     << "        if (G >= groups) break; // the warp's lanes together\n"
     << "        // B: token tb's values; C: tokens tc and tc + 1.\n"
     << "        const int tb = t0 + 8 * G + g, tc = t0 + 8 * G + 2 * t4;\n"
     << "        unsigned b[2] = {0u, 0u};\n"
     << "        if (tb < nTok) {\n"
     << "          const u8 *v = xq + tb * kTok + blk * 32 + 4 * t4;\n"
     << "          b[0] = *reinterpret_cast<const unsigned *>(v);\n"
     << "          b[1] = *reinterpret_cast<const unsigned *>(v + 16);\n"
     << "        }\n"
     << "        const float s[2] = {\n"
     << "            tc < nTok ? reinterpret_cast<const float *>(xq + tc * "
        "kTok + kCols)[blk] : 0.f,\n"
     << "            tc + 1 < nTok ? reinterpret_cast<const float *>(xq + (tc "
        "+ 1) * kTok + kCols)[blk] : 0.f};\n";
  if (mins) {
    os << "        int sum[4] = {0, 0, 0, 0};\n"
       << "        pf_mma_s8(sum, kOnes, b);\n";
    if (halfMins)
      os << "        int sumHi[4] = {0, 0, 0, 0};\n"
         << "        pf_mma_s8(sumHi, kOnesHi, b);\n";
  }
  // Element e: row g (fa, ma) for e < 2, else g + 8 (fb, mb); token tc +
  // (e & 1).
  for (size_t i = 0; i < ops.size(); ++i) {
    const std::string n = std::to_string(i), p = "p" + n;
    const TileForm form = tileForm(ops[i].type);
    os << "        {\n";
    if (form.halves)
      os << "          const unsigned lo[4] = {" << p << ".a[0], " << p
         << ".a[1], 0u, 0u}, hi[4] = {0u, 0u, " << p << ".a[2], " << p
         << ".a[3]};\n"
         << "          int c[4] = {0, 0, 0, 0}, cHi[4] = {0, 0, 0, 0};\n"
         << "          pf_mma_s8(c, lo, b);\n"
         << "          pf_mma_s8(cHi, hi, b);\n";
    else
      os << "          int c[4] = {0, 0, 0, 0};\n"
         << "          pf_mma_s8(c, " << p << ".a, b);\n";
    os << "#pragma unroll\n"
       << "          for (int e = 0; e < 4; ++e) {\n"
       << "            const float *f = e < 2 ? " << p << ".fa : " << p
       << ".fb;\n";
    if (form.mins)
      os << "            const float *m = e < 2 ? " << p << ".ma : " << p
         << ".mb;\n";
    os << "            const float se = s[e & 1];\n"
       << "            acc" << n << "[G][e] += f[0] * (se * pf_i2f(c[e]));\n";
    if (form.halves)
      os << "            acc" << n
         << "[G][e] += f[1] * (se * pf_i2f(cHi[e]));\n";
    if (form.mins)
      os << "            acc" << n
         << "[G][e] += m[0] * (se * pf_i2f(sum[e]));\n";
    if (form.mins && form.halves)
      os << "            acc" << n
         << "[G][e] += m[1] * (se * pf_i2f(sumHi[e]));\n";
    os << "          }\n"
       << "        }\n";
  }
  os << "      }\n"
     << "    }\n";
  emitTileStores(os, ops.size(), store);
  os << "  }\n";
}

namespace {

// A matvec's parameters and the body's brace: with `downParams` the down
// kernels' (the split down kernels' list; part and done unused), else
// (w, bias, x, y, nTok).
const char *matvecParams(bool downParams) {
  return downParams
             ? "(const u8 *__restrict__ w, const float *__restrict__ x,\n"
               "    float *__restrict__ y, float *part, unsigned *done, int "
               "nTok) {\n"
             : "(const u8 *__restrict__ w, const float *__restrict__ bias,\n"
               "    const float *__restrict__ x, float *__restrict__ y, int "
               "nTok) {\n";
}

// NAME + kTilesSuffix's signature, matvecParams'.
void emitTilesSignature(std::ostream &os, const std::string &name,
                        bool downParams) {
  os << "extern \"C\" __global__ void __launch_bounds__(" << gpuattn::kTileBlock
     << ", " << gpuattn::kTileMinBlocks << ") " << name << gpuattn::kTilesSuffix
     << matvecParams(downParams);
}

// NAME + kTilesSuffix (runtime/gpu_attention.h): the matvec on tensor
// cores, for a prompt's chunk; with `downParams` the down kernels'
// parameters, as emitMatvec's.
void emitMatvecTiles(std::ostream &os, const std::string &name, GGMLType type,
                     int64_t rows, int64_t cols, bool bias, bool relu,
                     bool downParams) {
  emitTilesSignature(os, name, downParams);
  // Four groups of 8 tokens a pass; Q2_K's two products and two sums a
  // block spilled at four (ptxas, 64 registers), two.
  emitTileBody(os, rows, cols, {{"w", type}}, type == GGMLType::Q2_K ? 2 : 4,
               std::string("        y[(long)t * kRows + r] = ") +
                   (relu ? "pf_relu(v0" : "(v0") + (bias ? " + bias[r]" : "") +
                   ");\n");
  os << "}\n";
}

} // namespace

void emitMatvec(std::ostream &os, const std::string &name, GGMLType type,
                int64_t rows, int64_t cols, bool bias, bool relu,
                bool downParams, bool tiles) {
  if (tiles && gpuattn::hasMatvecTiles(type, cols))
    emitMatvecTiles(os, name, type, rows, cols, bias, relu, downParams);
  using namespace gpuattn;
  os << "extern \"C\" __global__ void __launch_bounds__(" << kMatvecBlock
     << ", " << kRowKernelMinBlocks << ") " << name;
  os << matvecParams(downParams);
  os << "  constexpr int kRows = " << rows << ", kCols = " << cols
     << ", kRow = " << rowBytes(type, cols) << ";\n"
     << "  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;\n"
     << "  const int lane = threadIdx.x & 31;\n"
     << "  if (r >= kRows) return; // whole warps\n"
     << "  const u8 *row = w + (long)r * kRow;\n"
     << (bias ? "  const float b = bias[r];\n" : "")
     << "  // A prompt's tokens " << kTokenGroup
     << " at a time, each lane loading and decoding its share\n"
     << "  // of the row once for them; the rest one by one. Each token's "
        "sum is\n"
     << "  // the same either way.\n"
     << "  int t = 0;\n"
     << "#pragma unroll 1\n"
     << "  for (; t + " << kTokenGroup << " <= nTok; t += " << kTokenGroup
     << ") {\n"
     << "    float s[" << kTokenGroup << "] = {};\n"
     << "    pf_dots_" << suffix(type) << "<kCols, " << kTokenGroup
     << ">(row, x + (long)t * kCols, kCols, lane, s);\n"
     << "#pragma unroll\n"
     << "    for (int i = 0; i < " << kTokenGroup << "; ++i) {\n"
     << "      const float v = pf_warp_sum(s[i]);\n"
     << "      if (lane == 0) y[(long)(t + i) * kRows + r] = "
     << (relu ? "pf_relu(v" : "(v") << (bias ? " + b" : "") << ");\n"
     << "    }\n"
     << "  }\n"
     << "#pragma unroll 1\n"
     << "  for (; t < nTok; ++t) {\n"
     << "    const float v = pf_dot_" << suffix(type)
     << "<kCols>(row, x + (long)t * kCols, lane);\n"
     << "    if (lane == 0) y[(long)t * kRows + r] = "
     << (relu ? "pf_relu(v" : "(v") << (bias ? " + b" : "") << ");\n"
     << "  }\n"
     << "}\n";
}

void emitAttentionHelpers(std::ostream &os) { os << kHelpers; }

void emitResidualKernels(std::ostream &os, const ModelParams &p) {
  using namespace gpuattn;
  os << "\n// The residual stream on the GPU: norms, adds, the 8-bit input of\n"
     << "// Q8_0/Q4_0/Q5_0 matvecs, and the count of hot neurons that fired.\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << kResidNormBlock
     << ") " << kResidNorm
     << "(const float *x, const float *__restrict__ w, float *y) {\n"
     << "  constexpr int kN = " << p.nEmbd << ";\n"
     << "  // One block per token.\n"
     << "  x += (long)blockIdx.x * kN;\n"
     << "  y += (long)blockIdx.x * kN;\n"
     << "  __shared__ double red[" << kResidNormBlock / 32 << "];\n"
     << "  double ss = 0.0;\n"
     << "  for (int i = threadIdx.x; i < kN; i += blockDim.x)\n"
     << "    ss += (double)x[i] * x[i];\n"
     << "  for (int o = 16; o > 0; o >>= 1)\n"
     << "    ss += __shfl_xor_sync(0xffffffffu, ss, o);\n"
     << "  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;\n"
     << "  __syncthreads();\n"
     << "  double t = 0.0;\n"
     << "  for (int k = 0; k < (int)(blockDim.x >> 5); ++k) t += red[k];\n"
     << "  const float scale = (float)(1.0 / sqrt(t / kN + "
     << floatLiteral(p.normEps) << "));\n"
     << "  for (int i = threadIdx.x; i < kN; i += blockDim.x)\n"
     << "    y[i] = x[i] * scale * w[i];\n"
     << "}\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << kResidBlock << ") "
     << kResidAdd
     << "(float *__restrict__ x, const float *__restrict__ y, int nTok) {\n"
     << "  const int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
     << "  if (i < " << p.nEmbd << " * nTok) x[i] += y[i];\n"
     << "}\n";
  emitQuant(os, kResidQuant, p.nEmbd);
  os << "extern \"C\" __global__ void __launch_bounds__(" << kResidBlock
     << ") " << kResidCount
     << "(const float *__restrict__ h, int n, unsigned *__restrict__ c) {\n"
     << "  const int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
     << "  if ((i & ~31) >= n) return; // whole warps\n"
     << "  float f = i < n && h[i] != 0.f ? 1.f : 0.f;\n"
     << "  f = pf_warp_sum(f);\n"
     << "  if ((threadIdx.x & 31) == 0) atomicAdd(c, (unsigned)f);\n"
     << "}\n";
}

void emitHotCount(std::ostream &os) {
  using namespace gpuattn;
  os << "\n// The hot neurons that fired, counted where they are.\n"
     << "extern \"C\" __global__ void __launch_bounds__(" << kHotCountBlock
     << ") " << kHotCount
     << "(const float *__restrict__ h, int n, unsigned *__restrict__ c) {\n"
     << "  __shared__ unsigned warps[" << kHotCountBlock / 32 << "];\n"
     << "  unsigned count = 0;\n"
     << "  for (int i = threadIdx.x; i < n; i += blockDim.x)\n"
     << "    count += h[i] != 0.f ? 1u : 0u;\n"
     << "  for (int o = 16; o > 0; o >>= 1)\n"
     << "    count += __shfl_xor_sync(0xffffffffu, count, o);\n"
     << "  if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = count;\n"
     << "  __syncthreads();\n"
     << "  if (threadIdx.x != 0) return;\n"
     << "  unsigned total = 0;\n"
     << "  for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += "
        "warps[w];\n"
     << "  *c = total;\n"
     << "}\n";
}

void emitHeadSelect(std::ostream &os, int64_t nVocab) {
  using namespace gpuattn;
  // The record's layout is HeadSel's: every member four bytes wide, so
  // both compilers lay it out alike.
  os << "\n// The head's best logits, chosen here (runtime/gpu_attention.h).\n"
     << "struct pf_sel_cand { int id; float logit; };\n"
     << "struct pf_sel {\n"
     << "  int k, nExtra, cut;\n"
     << "  unsigned count;\n"
     << "  int bad, pad[3];\n"
     << "  int extraIds[" << kSelExtraMax << "];\n"
     << "  float extraLogits[" << kSelExtraMax << "];\n"
     << "  pf_sel_cand cand[" << kSelCap << "];\n"
     << "  unsigned hist[" << kSelBins << "];\n"
     << "};\n"
     << "// A logit's bin: the 12 high bits of its order-preserving key.\n"
     << "__device__ __forceinline__ int pf_sel_bin(float v) {\n"
     << "  const unsigned u = __float_as_uint(v);\n"
     << "  return (int)(((u & 0x80000000u) ? ~u : (u | 0x80000000u)) >> 20);\n"
     << "}\n";
  const std::string n = std::to_string(nVocab);
  os << "extern \"C\" __global__ void __launch_bounds__(" << kSelBlock << ") "
     << kHeadHist
     << "(const float *__restrict__ logits, pf_sel *__restrict__ sel) {\n"
     << "  __shared__ unsigned h[" << kSelBins << "];\n"
     << "  for (int b = threadIdx.x; b < " << kSelBins
     << "; b += blockDim.x) h[b] = 0u;\n"
     << "  __syncthreads();\n"
     << "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < " << n
     << ";\n"
     << "       i += gridDim.x * blockDim.x) {\n"
     << "    const float v = logits[i];\n"
     << "    if (!(fabsf(v) <= 3.402823466e38f)) atomicMin(&sel->bad, i);\n"
     << "    atomicAdd(&h[pf_sel_bin(v)], 1u);\n"
     << "  }\n"
     << "  __syncthreads();\n"
     << "  for (int b = threadIdx.x; b < " << kSelBins << "; b += blockDim.x)\n"
     << "    if (h[b]) atomicAdd(&sel->hist[b], h[b]);\n"
     << "}\n";
  static_assert(kSelCutBlock * 4 == unsigned(kSelBins), "four bins a thread");
  os << "extern \"C\" __global__ void __launch_bounds__(" << kSelCutBlock
     << ") " << kHeadCut << "(pf_sel *__restrict__ sel) {\n"
     << "  // Thread t: bins 4t .. 4t + 3 counted from the highest down.\n"
     << "  __shared__ unsigned sums[" << kSelCutBlock << "];\n"
     << "  const int t = threadIdx.x, top = " << kSelBins - 1 << " - 4 * t;\n"
     << "  unsigned mine = 0u;\n"
     << "  for (int j = 0; j < 4; ++j) mine += sel->hist[top - j];\n"
     << "  sums[t] = mine;\n"
     << "  __syncthreads();\n"
     << "  // Inclusive prefix sums over the threads.\n"
     << "  for (int o = 1; o < " << kSelCutBlock << "; o <<= 1) {\n"
     << "    const unsigned v = t >= o ? sums[t - o] : 0u;\n"
     << "    __syncthreads();\n"
     << "    sums[t] += v;\n"
     << "    __syncthreads();\n"
     << "  }\n"
     << "  const unsigned k = (unsigned)sel->k;\n"
     << "  const unsigned before = t > 0 ? sums[t - 1] : 0u;\n"
     << "  if (before < k && sums[t] >= k) {\n"
     << "    unsigned c = before;\n"
     << "    int b = top;\n"
     << "    for (int j = 0; j < 4; ++j) {\n"
     << "      b = top - j;\n"
     << "      c += sel->hist[b];\n"
     << "      if (c >= k) break;\n"
     << "    }\n"
     << "    sel->cut = b;\n"
     << "  }\n"
     << "  // Fewer logits than k: all of them.\n"
     << "  if (t == " << kSelCutBlock - 1 << " && sums[t] < k) sel->cut = 0;\n"
     << "  __syncthreads();\n"
     << "  for (int j = 0; j < 4; ++j) sel->hist[top - j] = 0u;\n"
     << "}\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << kSelBlock << ") "
     << kHeadPick
     << "(const float *__restrict__ logits, pf_sel *__restrict__ sel) {\n"
     << "  const int cut = sel->cut;\n"
     << "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < " << n
     << ";\n"
     << "       i += gridDim.x * blockDim.x) {\n"
     << "    const float v = logits[i];\n"
     << "    if (pf_sel_bin(v) < cut) continue;\n"
     << "    const unsigned slot = atomicAdd(&sel->count, 1u);\n"
     << "    if (slot < " << kSelCap << "u) {\n"
     << "      sel->cand[slot].id = i;\n"
     << "      sel->cand[slot].logit = v;\n"
     << "    }\n"
     << "  }\n"
     << "  if (blockIdx.x == 0)\n"
     << "    for (int j = threadIdx.x; j < sel->nExtra; j += blockDim.x)\n"
     << "      sel->extraLogits[j] = logits[sel->extraIds[j]];\n"
     << "}\n";
}

bool smHasIntMma(const std::string &smArch) {
  return smArch.rfind("sm_", 0) == 0 && std::atoi(smArch.c_str() + 3) >= 80;
}

void emitAttentionKernels(std::ostream &os, const ModelParams &p, int layer,
                          const AttentionDesc &a, bool tiles) {
  using namespace gpuattn;
  const int64_t qDim = p.qDim(), kvDim = p.kvDim();
  os << "\n// Layer " << layer << "'s attention: " << p.nHead << " heads ("
     << p.nKvHead << " KV) of " << p.headDim << "; wq " << typeName(a.wq)
     << ", wk " << typeName(a.wk) << ", wv " << typeName(a.wv) << ", wo "
     << typeName(a.wo) << (a.bias ? ", biases" : "")
     << (a.qkNorm ? ", Q/K norms" : "");
  if (a.window)
    os << ", window " << a.window;
  os << ".\n";
  emitMatvec(os, kernelName(layer, "wq"), a.wq, qDim, p.nEmbd, a.bias, false,
             false, tiles);
  emitMatvec(os, kernelName(layer, "wk"), a.wk, kvDim, p.nEmbd, a.bias, false,
             false, tiles);
  emitMatvec(os, kernelName(layer, "wv"), a.wv, kvDim, p.nEmbd, a.bias, false,
             false, tiles);

  // RoPE pairs: adjacent, or half the rotated span apart (NeoX).
  const bool neox = p.ropeStyle == RopeStyle::Neox;
  // The K and V projections' rows go into the cache at the position read
  // from device memory, so that a token's launches take the same
  // arguments at every position (one CUDA graph serves them all).
  os << "extern \"C\" __global__ void __launch_bounds__(" << kRopeBlock << ") "
     << kernelName(layer, "rope")
     << "(float *__restrict__ q, float *__restrict__ kIn,\n"
     << "    const float *__restrict__ vIn, u16 *__restrict__ keys,\n"
     << "    u16 *__restrict__ values, const float *__restrict__ qNorm,\n"
     << "    const float *__restrict__ kNorm, const float *__restrict__ cs,\n"
     << "    const int *__restrict__ pos, int nTok) {\n"
     << "  constexpr int kHeads = " << p.nHead << ", kHeadDim = " << p.headDim
     << ", kRot = " << p.nRot << ", kKvDim = " << kvDim << ", kQDim = " << qDim
     << ", kBlocks = " << p.nHead + p.nKvHead << ";\n"
     << "  // A chunk's tokens one group of blocks each: token-major q, k, v,\n"
     << "  // RoPE tables and positions.\n"
     << "  const int tok = blockIdx.x / kBlocks, h = blockIdx.x % kBlocks;\n"
     << "  const int lane = threadIdx.x;\n"
     << "  if (tok >= nTok) return;\n"
     << "  q += (long)tok * kQDim;\n"
     << "  kIn += (long)tok * kKvDim;\n"
     << "  vIn += (long)tok * kKvDim;\n"
     << "  cs += (long)tok * kRot;\n"
     << "  pos += tok;\n"
     << "  // A key head is normed and rotated in kIn, then stored in the\n"
     << "  // cache as f16 with its value row (below).\n"
     << "  float *v = h < kHeads ? q + h * kHeadDim : kIn + (h - kHeads) * "
        "kHeadDim;\n";
  if (a.qkNorm)
    os << "  const float *nw = h < kHeads ? qNorm : kNorm;\n"
       << "  float ss = 0.f;\n"
       << "  for (int i = lane; i < kHeadDim; i += 32) ss += v[i] * v[i];\n"
       << "  ss = pf_warp_sum(ss);\n"
       << "  const float scale = (float)(1.0 / sqrt((double)ss / kHeadDim + "
       << floatLiteral(p.normEps) << "));\n"
       << "  for (int i = lane; i < kHeadDim; i += 32) v[i] = v[i] * scale * "
          "nw[i];\n"
       << "  __syncwarp();\n";
  os << "  // cs: cos and sin of each pair's angle at this position, made by\n"
     << "  // the host as the CPU's rope() makes them.\n"
     << "  for (int i = lane; i < kRot / 2; i += 32) {\n"
     << "    const float c = cs[2 * i], s = cs[2 * i + 1];\n"
     << "    float *e = v + " << (neox ? "i" : "2 * i") << ";\n"
     << "    const float x0 = e[0], x1 = e[" << (neox ? "kRot / 2" : "1")
     << "];\n"
     << "    e[0] = x0 * c - x1 * s;\n"
     << "    e[" << (neox ? "kRot / 2" : "1") << "] = x0 * s + x1 * c;\n"
     << "  }\n"
     << "  if (h < kHeads) return;\n"
     << "  __syncwarp(); // the rotated pairs are other lanes'\n"
     << "  const int kv = (h - kHeads) * kHeadDim;\n"
     << "  const long at = (long)*pos * kKvDim + kv;\n"
     << "  for (int i = lane; i < kHeadDim; i += 32) {\n"
     << "    keys[at + i] = pf_f2h(v[i]);\n"
     << "    values[at + i] = pf_f2h(vIn[kv + i]);\n"
     << "  }\n"
     << "}\n";

  // Split over the context (flash decoding): block (b, c) takes chunk c of
  // kAttendChunk positions for the query heads of head group b (those of
  // one KV head, gpuattn::attendHeads of them), so that the chunk's keys
  // and values are read once for the group; a warp per key row reads it
  // coalesced along the head's dimensions. Each head's scores, max, sum
  // and outputs take the operations they took with a block per head. Each
  // block writes its chunk's max, sum and unnormalised output per head;
  // the last of a group's blocks to finish (a counter in `done`, reset by
  // that block) combines the chunks in chunk order, so the result does not
  // depend on which block is last.
  const int sub = gpuattn::attendHeads(p.nHead, p.nKvHead);
  os << "extern \"C\" __global__ void __launch_bounds__(" << kAttendBlock
     << ") " << kernelName(layer, "attend") << "(const float *__restrict__ q,\n"
     << "    const u16 *__restrict__ keys, const u16 *__restrict__ "
        "values,\n"
     << "    float *__restrict__ scores, float *__restrict__ part,\n"
     << "    unsigned *__restrict__ done, float *__restrict__ out,\n"
     << "    const int *__restrict__ posp, int nCtx, int nTok) {\n"
     << "  constexpr int kHeadDim = " << p.headDim << ", kKvDim = " << kvDim
     << ", kGroup = " << p.nHead / p.nKvHead << ", kWindow = " << a.window
     << ", kHeads = " << p.nHead << ", kQDim = " << qDim << ";\n"
     << "  constexpr int kSub = " << sub << "; // query heads per block\n"
     << "  constexpr int kChunk = " << kAttendChunk
     << ", kPart = kHeadDim + 2, "
     << "kWarps = " << kAttendBlock / 32 << ";\n"
     << "  __shared__ float red[kWarps];\n"
     << "  __shared__ unsigned last;\n"
     << "  const int nSplit = (nCtx + kChunk - 1) / kChunk;\n"
     << "  // A chunk's tokens one group of blocks each, in order, with their\n"
     << "  // own scores, partial results and counters.\n"
     << "  const int tok = blockIdx.x / (kHeads / kSub * nSplit);\n"
     << "  const int hc = blockIdx.x % (kHeads / kSub * nSplit);\n"
     << "  const int h0 = hc / nSplit * kSub, c = hc % nSplit;\n"
     << "  if (tok >= nTok) return;\n"
     << "  q += (long)tok * kQDim;\n"
     << "  out += (long)tok * kQDim;\n"
     << "  posp += tok;\n"
     << "  scores += (long)tok * kHeads * nCtx;\n"
     << "  part += (long)tok * kHeads * nSplit * kPart;\n"
     << "  done += tok * kHeads;\n"
     << "  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;\n"
     << "  const int end = *posp + 1;\n"
     << "  const int first = kWindow > 0 && end > kWindow ? end - kWindow : "
        "0;\n"
     << "  const int j0 = c * kChunk > first ? c * kChunk : first;\n"
     << "  const int j1 = (c + 1) * kChunk < end ? (c + 1) * kChunk : end;\n"
     << "  const float *qh = q + h0 * kHeadDim;\n"
     << "  const long kvHead = (long)(h0 / kGroup) * kHeadDim;\n"
     << "  float *sc = scores + (long)h0 * nCtx;\n"
     << "  const float scale = 1.f / sqrtf((float)kHeadDim);\n"
     << "  float mx[kSub];\n"
     << "#pragma unroll\n"
     << "  for (int g = 0; g < kSub; ++g) mx[g] = -3.402823466e38f;\n"
     << "  // The loops over positions and dimensions not unrolled: unrolled,\n"
     << "  // ptxas spilled.\n"
     << "#pragma unroll 1\n"
     << "  for (int j = j0 + warp; j < j1; j += kWarps) {\n"
     << "    const u16 *kj = keys + (long)j * kKvDim + kvHead;\n"
     << "    float s[kSub];\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < kSub; ++g) s[g] = 0.f;\n"
     << "#pragma unroll 1\n"
     << "    for (int d = lane; d < kHeadDim; d += 32) {\n"
     << "      const float k = pf_h2f(kj[d]);\n"
     << "#pragma unroll\n"
     << "      for (int g = 0; g < kSub; ++g) s[g] += k * qh[g * kHeadDim + "
        "d];\n"
     << "    }\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < kSub; ++g) {\n"
     << "      const float v = pf_warp_sum(s[g]) * scale;\n"
     << "      if (lane == 0) sc[(long)g * nCtx + j] = v;\n"
     << "      mx[g] = fmaxf(mx[g], v);\n"
     << "    }\n"
     << "  }\n"
     << "  float sum[kSub];\n"
     << "#pragma unroll\n"
     << "  for (int g = 0; g < kSub; ++g) {\n"
     << "    mx[g] = pf_block_max(mx[g], red); // its barriers publish sc\n"
     << "    float e = 0.f;\n"
     << "#pragma unroll 1\n"
     << "    for (int j = j0 + t; j < j1; j += blockDim.x) {\n"
     << "      const float x = expf(sc[(long)g * nCtx + j] - mx[g]);\n"
     << "      sc[(long)g * nCtx + j] = x;\n"
     << "      e += x;\n"
     << "    }\n"
     << "    sum[g] = pf_block_sum(e, red);\n"
     << "  }\n"
     << "  for (int d = t; d < kHeadDim; d += blockDim.x) {\n"
     << "    float o[kSub];\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < kSub; ++g) o[g] = 0.f;\n"
     << "#pragma unroll 1\n"
     << "    for (int j = j0; j < j1; ++j) {\n"
     << "      const float v = pf_h2f(values[(long)j * kKvDim + kvHead + d]);\n"
     << "#pragma unroll\n"
     << "      for (int g = 0; g < kSub; ++g) o[g] += sc[(long)g * nCtx + j] * "
        "v;\n"
     << "    }\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < kSub; ++g)\n"
     << "      part[((long)(h0 + g) * nSplit + c) * kPart + d] = o[g];\n"
     << "  }\n"
     << "  if (t == 0)\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < kSub; ++g) {\n"
     << "      float *ph = part + ((long)(h0 + g) * nSplit + c) * kPart;\n"
     << "      ph[kHeadDim] = mx[g];\n"
     << "      ph[kHeadDim + 1] = sum[g]; // 0: an empty chunk\n"
     << "    }\n"
     << "  __threadfence();\n"
     << "  __syncthreads();\n"
     << "  if (t == 0) last = atomicAdd(&done[h0], 1u) == (unsigned)nSplit - "
        "1u;\n"
     << "  __syncthreads();\n"
     << "  if (!last) return;\n"
     << "  // Past L1: the other blocks' chunks were written on other SMs.\n"
     << "  for (int g = 0; g < kSub; ++g) {\n"
     << "    const int h = h0 + g;\n"
     << "    const volatile float *pv = part + (long)h * nSplit * kPart;\n"
     << "    float m = -3.402823466e38f;\n"
     << "    for (int k = 0; k < nSplit; ++k)\n"
     << "      if (pv[k * kPart + kHeadDim + 1] > 0.f)\n"
     << "        m = fmaxf(m, pv[k * kPart + kHeadDim]);\n"
     << "    float l = 0.f;\n"
     << "    for (int k = 0; k < nSplit; ++k)\n"
     << "      if (pv[k * kPart + kHeadDim + 1] > 0.f)\n"
     << "        l += expf(pv[k * kPart + kHeadDim] - m) * pv[k * kPart + "
        "kHeadDim + 1];\n"
     << "    const float inv = 1.f / l;\n"
     << "    for (int d = t; d < kHeadDim; d += blockDim.x) {\n"
     << "      float o = 0.f;\n"
     << "#pragma unroll 1\n"
     << "      for (int k = 0; k < nSplit; ++k)\n"
     << "        if (pv[k * kPart + kHeadDim + 1] > 0.f)\n"
     << "          o += expf(pv[k * kPart + kHeadDim] - m) * pv[k * kPart + "
        "d];\n"
     << "      out[h * kHeadDim + d] = o * inv;\n"
     << "    }\n"
     << "  }\n"
     << "  if (t == 0) done[h0] = 0u;\n"
     << "}\n";

  emitQuant(os, kernelName(layer, "quant"), qDim);
  emitMatvec(os, kernelName(layer, "wo"), a.wo, p.nEmbd, qDim, false, false,
             false, tiles);
}

} // namespace pinfer
