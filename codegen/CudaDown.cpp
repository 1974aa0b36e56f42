// The hot down kernel's token loops; see CudaDown.h.
#include "codegen/CudaDown.h"
#include "runtime/gpu_attention.h"
#include "runtime/kernels.h"

#include <algorithm>
#include <sstream>

namespace pinfer {

namespace {

// `text` with each line but the pragmas `n` spaces further in.
std::string indented(const std::string &text, int n) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);)
    out +=
        (line.empty() || line[0] == '#' ? line
                                        : std::string(size_t(n), ' ') + line) +
        "\n";
  return out;
}

// Hot neuron k's kCols values at column c as wa[i], a row of `rowType`:
// one 16/8-byte load for f32/f16/bf16 rows where the columns come in
// fours, the other row types element by element.
std::string rowLoad(GGMLType rowType, unsigned cols) {
  const char *suffix = typeTraits(rowType)->cudaSuffix;
  std::ostringstream os;
  os << "const u8 *row = downT + (long)k * kRow;\n"
     << "float wa[kCols];\n";
  if (cols > 1 && rowType == GGMLType::F32)
    os << "const pf_f4 w = pf_ldf4(reinterpret_cast<const float *>(row) + "
          "c);\n"
       << "wa[0] = w.x; wa[1] = w.y; wa[2] = w.z; wa[3] = w.w;\n";
  else if (cols > 1 && (rowType == GGMLType::F16 || rowType == GGMLType::BF16))
    os << "const pf_u2 w = pf_ldu2(row + 2 * c);\n"
       << "wa[0] = pf_" << suffix << "_lo(w.x); wa[1] = pf_" << suffix
       << "_hi(w.x);\n"
       << "wa[2] = pf_" << suffix << "_lo(w.y); wa[3] = pf_" << suffix
       << "_hi(w.y);\n";
  else
    os << "#pragma unroll\n"
       << "for (int i = 0; i < kCols; ++i) wa[i] = pf_at_" << suffix
       << "(row, c + i);\n";
  return os.str();
}

// Hot neuron k's kCols quants at column c as floats, wq[]: a signed byte
// (SplitQ8, SplitK) or a nibble less 8 (SplitQ4), exact.
std::string quantLoad(DownLayout layout, unsigned cols) {
  std::ostringstream os;
  os << "const u8 *row = downT + (long)k * kRow;\n"
     << "float wq[kCols];\n";
  if (cols > 1) {
    // One 32-bit load of four quants; each to a float through its biased
    // byte (pf_b2f), the integer-to-float conversion's exact value.
    if (layout == DownLayout::SplitQ4)
      os << "const unsigned qv = *reinterpret_cast<const unsigned "
            "*>(row + (c >> 5) * 16 + (c & 15));\n"
         << "const int sh = (c & 31) < 16 ? 0 : 4;\n"
         << "#pragma unroll\n"
         << "for (int i = 0; i < kCols; ++i)\n"
         << "  wq[i] = pf_b2f((qv >> sh) & 0x0f0f0f0fu, i) - "
            "8388616.f;\n";
    else
      os << "const unsigned qv = *reinterpret_cast<const unsigned "
            "*>(row + c);\n"
         << "#pragma unroll\n"
         << "for (int i = 0; i < kCols; ++i)\n"
         << "  wq[i] = pf_b2f(qv ^ 0x80808080u, i) - 8388736.f;\n";
    return os.str();
  }
  os << "#pragma unroll\n"
     << "for (int i = 0; i < kCols; ++i) {\n"
     << "  const int ci = c + i;\n";
  if (layout == DownLayout::SplitQ4)
    os << "  const u8 b = row[(ci >> 5) * 16 + (ci & 15)];\n"
       << "  wq[i] = (float)(((ci & 31) < 16 ? (b & 15) : (b >> 4)) - "
          "8);\n";
  else
    os << "  wq[i] = (float)(signed char)row[ci];\n";
  os << "}\n";
  return os.str();
}

// Group gi's numbers at columns c..: sa[] the scale of each quant (SplitK:
// d * sc, the decoder's product) and, with mins, sb[] the constant each
// weight adds (dm * m).
std::string groupNumbers(GGMLType source, int64_t nEmbd, int64_t nFF,
                         unsigned cols, const std::string &in) {
  std::ostringstream os;
  os << in << "float sa[kCols];\n";
  if (downLayoutFor(source) != DownLayout::SplitK) {
    // The block's f16 scales, one per output.
    if (cols > 1)
      os << in
         << "const pf_u2 sv = pf_ldu2(reinterpret_cast<const u8 *>(scales + "
            "(long)gi * kEmbd + c));\n"
         << "#pragma unroll\n"
         << in << "for (int i = 0; i < kCols; ++i)\n"
         << in
         << "  sa[i] = pf_h2f((u16)((i < 2 ? sv.x : sv.y) >> (16 * (i & "
            "1))));\n";
    else
      os << in << "sa[0] = pf_h2f(scales[(long)gi * kEmbd + c]);\n";
    return os.str();
  }
  const SplitKLayout k = splitKLayout(source, nEmbd, nFF);
  if (k.mins)
    os << in << "float sb[kCols];\n";
  os << in << "const long gRow = (long)gi * kEmbd;\n"
     << in << "const long bRow = (long)(gi / (kBlock / kGroup)) * kEmbd;\n";
  // Four bytes of each byte table per load where the columns come in
  // fours; the float tables as one 16-byte load where aligned.
  const bool wideF = cols > 1 && k.d % 16 == 0 && k.dm % 16 == 0;
  if (cols > 1) {
    os << in
       << "const unsigned sv = *reinterpret_cast<const unsigned *>(scales + "
          "gRow + c);\n";
    if (k.mins)
      os << in
         << "const unsigned mv = *reinterpret_cast<const unsigned *>(scales + "
         << k.m << "L + gRow + c);\n";
  }
  if (wideF) {
    os << in << "const pf_f4 dv = pf_ldf4(dT + bRow + c);\n"
       << in << "const float dd[4] = {dv.x, dv.y, dv.z, dv.w};\n";
    if (k.mins)
      os << in << "const pf_f4 mmv = pf_ldf4(dmT + bRow + c);\n"
         << in << "const float dmm[4] = {mmv.x, mmv.y, mmv.z, mmv.w};\n";
  }
  auto byteAt = [&](const char *word, const std::string &table) {
    return cols > 1
               ? std::string("(float)(signed char)(") + word + " >> (8 * i))"
               : "(float)(signed char)" + table + "[c + i]";
  };
  os << "#pragma unroll\n"
     << in << "for (int i = 0; i < kCols; ++i) {\n"
     << in << "  sa[i] = " << (wideF ? "dd[i]" : "dT[bRow + c + i]") << " * "
     << byteAt("sv", "(scales + gRow)") << ";\n";
  if (k.mins)
    os << in << "  sb[i] = " << (wideF ? "dmm[i]" : "dmT[bRow + c + i]")
       << " * "
       << byteAt("mv", "(scales + " + std::to_string(k.m) + "L + gRow)")
       << ";\n";
  os << in << "}\n";
  return os.str();
}

// A run's sums into s[][]: y += sa * acc (+ sb * the run's coefficient
// sum), splitKScalar's operations.
// A run's sums into s[][]: s += sa * acc (+ sb * the run's coefficient
// sum), splitKScalar's operations.
std::string flushRun(const DownLoops &d, int n, bool mins) {
  std::ostringstream os;
  os << groupNumbers(d.source, d.nEmbd, d.nFF, d.cols, "") << "#pragma unroll\n"
     << "for (int g = 0; g < " << n << "; ++g)\n"
     << "#pragma unroll\n"
     << "  for (int i = 0; i < kCols; ++i)\n"
     << "    s[g][i] += "
     << (mins ? "fmaf(sb[i], hs[g], sa[i] * acc[g][i])" : "sa[i] * acc[g][i]")
     << ";\n";
  return os.str();
}

// Hot neuron x of the block's chunk of the list: of the hot half's or of
// the pick kernel's list.
std::string kAt(const DownLoops &d, const std::string &x) {
  return d.picked ? "(int)pick[" + std::to_string(gpuattn::kPickListAt) +
                        " + " + x + "]"
                  : x;
}

// The neurons of a pass over n tokens into s[n][]: with `listed` those
// the listing put in shared memory (positions [0, nFired), hk there too),
// else (rows in dense mode) every neuron of the chunk [k0, k1). A split
// layout's, always listed, go in runs of one group (each run's end found
// first, so that its loop has a count: one token's loads go four neurons
// ahead).
std::string neurons(const DownLoops &d, int n, bool listed) {
  const std::string N = std::to_string(n);
  const std::string x1 = listed ? "nFired" : "k1";
  const std::string unroll =
      n == 1 ? "#pragma unroll 4\n" : "#pragma unroll 1\n";
  std::ostringstream body; // neuron x's hk[] and k
  body << "const int k = " << (listed ? "pfFired[x]" : kAt(d, "x")) << ";\n"
       << "float hk[" << N << "];\n"
       << "#pragma unroll\n"
       << "for (int g = 0; g < " << N << "; ++g) hk[g] = "
       << (listed ? "pfH[x * " + N + " + g]" : "hg[g * kHot + k]") << ";\n";
  std::ostringstream os;
  if (downLayoutFor(d.source) == DownLayout::Rows) {
    os << unroll << "for (int x = " << (listed ? "0" : "k0") << "; x < " << x1
       << "; ++x) {\n"
       << indented(body.str() + rowLoad(d.rowType, d.cols), 2)
       << "#pragma unroll\n"
       << "  for (int g = 0; g < " << N << "; ++g)\n"
       << "#pragma unroll\n"
       << "    for (int i = 0; i < kCols; ++i) s[g][i] += hk[g] * wa[i];\n"
       << "}\n";
    return os.str();
  }
  const bool mins = downLayoutFor(d.source) == DownLayout::SplitK &&
                    splitKLayout(d.source, d.nEmbd, d.nFF).mins;
  os << "#pragma unroll 1\n"
     << "for (int x = 0; x < nFired;) {\n"
     << "  // A run: the list's next neurons of one group, [x, xe).\n"
     << "  const int gi = pfGroup[x];\n"
     // The next run's start: the first bit of pfStarts past x.
     << "  int xe = nFired;\n"
     << "#pragma unroll 1\n"
     << "  for (int wd = (x + 1) >> 5, lo = (x + 1) & 31; wd * 32 < nFired; "
        "++wd, lo = 0) {\n"
     << "    const unsigned m = pfStarts[wd] >> lo << lo;\n"
     << "    if (m) {\n"
     << "      xe = wd * 32 + __ffs((int)m) - 1;\n"
     << "      break;\n"
     << "    }\n"
     << "  }\n"
     << "  float acc[" << N << "][kCols] = {}"
     << (mins ? ", hs[" + N + "] = {}" : "") << ";\n"
     << indented(unroll, 2) << "  for (; x < xe; ++x) {\n"
     << indented(body.str() + quantLoad(downLayoutFor(d.source), d.cols), 4)
     << "#pragma unroll\n"
     << "    for (int g = 0; g < " << N << "; ++g) {\n"
     << "#pragma unroll\n"
     << "      for (int i = 0; i < kCols; ++i) acc[g][i] += hk[g] * wq[i];\n"
     << (mins ? "      hs[g] += hk[g];\n" : "") << "    }\n"
     << "  }\n"
     << indented(flushRun(d, n, mins), 2) << "}\n";
  return os.str();
}

// The list positions [w0, w1) of the neurons the pass's n tokens fired
// (in dense mode all of them: a split layout's runs are found the same
// way), in order, into pfFired[0, nFired) with their activations (pfH) and, for
// a split layout, their groups (pfGroup), by every thread of the block:
// each takes one position, a ballot per warp counts, and each fired
// neuron goes to its rank. The first barrier also keeps the last pass's
// readers ahead of the writes.
std::string compaction(const DownLoops &d, int n) {
  const bool split = downLayoutFor(d.source) != DownLayout::Rows;
  const std::string N = std::to_string(n);
  std::ostringstream os;
  os << "int nFired = 0;\n"
     << "#pragma unroll 1\n"
     << "for (int x0 = w0; x0 < w1; x0 += kThreads) {\n"
     << "  const int x = x0 + (int)threadIdx.x;\n"
     << "  int k = 0;\n"
     << "  float hk[" << N << "] = {};\n"
     << "  bool fired = false;\n"
     << "  if (x < w1) {\n"
     << "    k = " << kAt(d, "x") << ";\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < " << N << "; ++g) {\n"
     << "      hk[g] = hg[g * kHot + k];\n"
     << (d.skipZero ? "      fired |= hk[g] != 0.f;\n" : "") << "    }\n"
     << (d.skipZero ? "" : "    fired = true; // dense: every neuron\n")
     << "  }\n"
     << "  const unsigned lanes = __ballot_sync(0xffffffffu, fired);\n"
     << "  if ((threadIdx.x & 31) == 0) pfWarpFired[threadIdx.x >> 5] = "
        "__popc(lanes);\n"
     << "  __syncthreads();\n"
     << "  int at = nFired;\n"
     << "#pragma unroll\n"
     << "  for (int w = 0; w < kThreads / 32; ++w) {\n"
     << "    at += w < (int)(threadIdx.x >> 5) ? pfWarpFired[w] : 0;\n"
     << "    nFired += pfWarpFired[w];\n"
     << "  }\n"
     << "  if (fired) {\n"
     << "    at += __popc(lanes & ((1u << (threadIdx.x & 31)) - 1u));\n"
     << "    pfFired[at] = k;\n"
     << "#pragma unroll\n"
     << "    for (int g = 0; g < " << N << "; ++g) pfH[at * " << N
     << " + g] = hk[g];\n"
     << (split ? "    pfGroup[at] = (int)(ids[k] / kGroup);\n" : "") << "  }\n"
     << "  __syncthreads();\n"
     << "}\n";
  if (split)
    // Where the list's runs start (a neuron of another group than the
    // one before it), a bit a position: each run's end is then found
    // once, not tested neuron by neuron.
    os << "#pragma unroll 1\n"
       << "for (int p0 = 0; p0 < nFired; p0 += kThreads) {\n"
       << "  const int p = p0 + (int)threadIdx.x;\n"
       << "  const bool start = p < nFired && (p == 0 || pfGroup[p] != "
          "pfGroup[p - 1]);\n"
       << "  const unsigned bits = __ballot_sync(0xffffffffu, start);\n"
       << "  if ((threadIdx.x & 31) == 0) pfStarts[p >> 5] = bits;\n"
       << "}\n"
       << "__syncthreads();\n";
  return os.str();
}

} // namespace

void emitSplitDownConstants(std::ostream &os, GGMLType source, int64_t nEmbd,
                            int64_t nFF) {
  if (downLayoutFor(source) != DownLayout::SplitK) {
    os << "  // " << typeName(source)
       << " split: w = d * q, d (f16) per 32 neurons.\n"
       << "  constexpr int kGroup = 32;\n";
    return;
  }
  const SplitKLayout k = splitKLayout(source, nEmbd, nFF);
  os << "  // " << typeName(source) << " split: w = (d * sc) * q"
     << (k.mins ? " + dm * m" : "") << ", sc" << (k.mins ? " and m" : "")
     << " per " << k.group << " neurons, d" << (k.mins ? " and dm" : "")
     << " per " << k.block << ".\n"
     << "  constexpr int kGroup = " << k.group << ", kBlock = " << k.block
     << ";\n"
     << "  const float *const dT = reinterpret_cast<const float *>(scales + "
     << k.d << "L);\n";
  if (k.mins)
    os << "  const float *const dmT = reinterpret_cast<const float *>(scales "
          "+ "
       << k.dm << "L);\n";
}

void emitDownLoops(std::ostream &os, const DownLoops &d) {
  const bool split = downLayoutFor(d.source) != DownLayout::Rows;
  auto store = [](int n) {
    return "#pragma unroll\n"
           "for (int g = 0; g < " +
           std::to_string(n) +
           "; ++g)\n"
           "#pragma unroll\n"
           "  for (int i = 0; i < kCols; ++i)\n"
           "    part[((long)(t + g) * kSplits + split) * kEmbd + c + i] = "
           "s[g][i];\n";
  };
  // Outside dense mode, and for a split layout's runs in dense mode too,
  // the block lists the neurons before the products.
  const bool listing = d.skipZero || split;
  if (listing) {
    // A window holds a block's chunk where it can (a list of ids, their
    // activations and groups in shared memory, 12 KiB at most).
    const unsigned threads = gpuattn::kDownBlock;
    const unsigned window = std::min(
        512u, (std::max(1u, d.listMax) + threads - 1) / threads * threads);
    os << "  // The chunk's neurons to run (those the pass's tokens fired; "
          "dense: all),\n  // a window at a time:"
          "\n"
       << "  // listed by the whole block, then read by each thread.\n"
       << "  constexpr int kThreads = " << threads << ", kWindow = " << window
       << ";\n"
       << "  __shared__ int pfFired[kWindow];\n"
       << "  __shared__ float pfH[kWindow * " << d.tokens << "];\n"
       << (split ? "  __shared__ int pfGroup[kWindow];\n"
                   "  __shared__ unsigned pfStarts[kWindow / 32];\n"
                 : "")
       << "  __shared__ int pfWarpFired[kThreads / 32];\n";
    if (d.picked)
      // The chunk's start comes from the pick list: in shared memory, read
      // again at each pass, where ptxas spilled the register it held.
      os << "  __shared__ int pfStart;\n"
         << "  if (threadIdx.x == 0) pfStart = k0;\n"
         << "  __syncthreads();\n";
  }
  os << "  // A prompt's tokens " << d.tokens
     << " at a time, each row's values decoded once for them; the\n"
     << "  // rest one by one. Each token's sums are the bits it gets alone: "
        "a token\n"
     << "  // of a pass that did not fire a listed neuron adds zero times "
        "its\n"
     << "  // weights, and zero times the numbers of a run it fired none "
        "of.\n"
     << "  int t = 0;\n";
  for (int n : {d.tokens, 1}) {
    const std::string N = std::to_string(n);
    const std::string more = n > 1 ? "t + " + N + " <= nTok; t += " + N
                                   : std::string("t < nTok; ++t");
    if (!listing) {
      os << "#pragma unroll 1\n"
         << "  for (; c < kEmbd && " << more << ") {\n"
         << "    const float *hg = h + (long)t * kHot;\n"
         << "    float s[" << N << "][kCols] = {};\n"
         << indented(neurons(d, n, false) + store(n), 4) << "  }\n";
      continue;
    }
    // Every thread takes the passes (the listing's barriers), the
    // columns past n_embd with no sums.
    os << "#pragma unroll 1\n"
       << "  for (; " << more << ") {\n"
       << "    const float *hg = h + (long)t * kHot;\n"
       << "    float s[" << N << "][kCols] = {};\n"
       << "#pragma unroll 1\n"
       << "    for (int w0 = " << (d.picked ? "pfStart" : "k0")
       << "; w0 < k1; w0 += kWindow) {\n"
       << "      const int w1 = w0 + kWindow < k1 ? w0 + kWindow : k1;\n"
       << indented(compaction(d, n), 6) << "      if (c < kEmbd) {\n"
       << indented(neurons(d, n, true), 8) << "      }\n"
       << "    }\n"
       << "    if (c < kEmbd) {\n"
       << indented(store(n), 6) << "    }\n"
       << "  }\n";
  }
}

} // namespace pinfer
