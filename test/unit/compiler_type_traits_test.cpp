// Walks the type-traits table (runtime/type_table.h) and holds every row to
// the invariants the rest of pinfer relies on when it reads a row instead
// of switching over types: sizes agree with rowBytes, names are unique and
// parse back, a row's conversions round-trip within its stated error, a
// computable type has a dot kernel for every activation format it claims
// (in every instruction set the machine has), its layout and kernels agree,
// the dialect's dtype round-trips, and the code generators find what the
// row names (the CUDA device functions in the emitted prelude).
#include "codegen/CudaEmitter.h"
#include "compiler/InitAll.h"
#include "dialects/PInfer/IR/PInferOps.h"
#include "runtime/kernels.h"
#include "runtime/type_table.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace pinfer;

namespace {

std::vector<GGMLType> computableTypes() {
  std::vector<GGMLType> out;
  for (uint32_t i = 0; i < kNumTypes; ++i)
    if (kTypeTable[i].computable)
      out.push_back(static_cast<GGMLType>(i));
  return out;
}

std::string lower(std::string s) {
  for (char &c : s)
    c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Blocks of values of normal magnitude (no half subnormals), either sign,
// each block of 32 with its own scale, as weights have.
std::vector<float> sample(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 1.f), scale(0.05f, 4.f);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> x(n);
  for (int64_t b = 0; b < n; b += 32) {
    const float s = scale(rng);
    for (int64_t i = b; i < std::min(n, b + 32); ++i)
      x[i] = (negative(rng) ? -s : s) * u(rng);
  }
  return x;
}

TEST(TypeTraits, LookupIsTheTable) {
  for (uint32_t i = 0; i < kNumTypes; ++i) {
    if (kTypeTable[i].name == nullptr)
      EXPECT_EQ(typeTraits(i), nullptr) << i;
    else
      EXPECT_EQ(typeTraits(i), &kTypeTable[i]) << i;
  }
  EXPECT_EQ(typeTraits(kNumTypes), nullptr);
  EXPECT_EQ(&traitsOf<GGMLType::Q4_0>(), typeTraits(GGMLType::Q4_0));
}

TEST(TypeTraits, NamesAreUniqueAndParseBack) {
  std::set<std::string> names;
  for (uint32_t i = 0; i < kNumTypes; ++i) {
    const TypeTraits &t = kTypeTable[i];
    if (!t.name)
      continue;
    // parseTypeName ignores case, so names must differ in more than case.
    EXPECT_TRUE(names.insert(lower(t.name)).second) << t.name;
    GGMLType parsed;
    ASSERT_TRUE(parseTypeName(t.name, parsed)) << t.name;
    EXPECT_EQ(static_cast<uint32_t>(parsed), i) << t.name;
    EXPECT_STREQ(typeName(parsed), t.name);
  }
}

TEST(TypeTraits, BlockSizesAgreeWithRowBytes) {
  for (uint32_t i = 0; i < kNumTypes; ++i) {
    const TypeTraits &t = kTypeTable[i];
    if (!t.name)
      continue;
    const GGMLType type = static_cast<GGMLType>(i);
    ASSERT_GT(t.blockSize, 0u) << t.name;
    ASSERT_GT(t.typeSize, 0u) << t.name;
    for (int64_t blocks : {1, 3, 128})
      EXPECT_EQ(rowBytes(type, blocks * t.blockSize),
                size_t(blocks) * t.typeSize)
          << t.name;
    if (t.blockSize > 1) {
      EXPECT_EQ(rowBytes(type, t.blockSize + 1), 0u) << t.name;
    }
  }
}

TEST(TypeTraits, OnlyComputableRowsHaveMore) {
  for (uint32_t i = 0; i < kNumTypes; ++i) {
    const TypeTraits &t = kTypeTable[i];
    const GGMLType type = static_cast<GGMLType>(i);
    EXPECT_EQ(isComputable(type), t.computable) << i;
    if (t.computable)
      continue;
    EXPECT_EQ(t.enumerator, nullptr) << i;
    EXPECT_EQ(t.cudaSuffix, nullptr) << i;
    EXPECT_EQ(t.toF32, nullptr) << i;
    EXPECT_EQ(t.fromF32, nullptr) << i;
    EXPECT_EQ(t.axpy, nullptr) << i;
    EXPECT_EQ(t.portable.dot, nullptr) << i;
    EXPECT_EQ(t.avx2.dot, nullptr) << i;
    EXPECT_EQ(dotKernel(type), nullptr) << i;
    if (t.name) {
      std::vector<float> x(t.blockSize, 1.f);
      std::vector<uint8_t> bytes(t.typeSize);
      EXPECT_FALSE(quantizeRow(type, x.data(), bytes.data(), t.blockSize))
          << t.name;
    }
  }
}

TEST(TypeTraits, ComputableRowsAreComplete) {
  std::set<std::string> enumerators, suffixes;
  std::set<uint32_t> fileTypes;
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    ASSERT_NE(t.enumerator, nullptr);
    ASSERT_NE(t.cudaSuffix, nullptr);
    // The enumerator names this type's GGMLType (enumerators are the
    // upper-case names).
    GGMLType byEnumerator;
    ASSERT_TRUE(parseTypeName(t.enumerator, byEnumerator));
    EXPECT_EQ(byEnumerator, type);
    EXPECT_TRUE(enumerators.insert(t.enumerator).second);
    EXPECT_TRUE(suffixes.insert(t.cudaSuffix).second);
    EXPECT_TRUE(fileTypes.insert(t.fileType).second);
    EXPECT_NE(t.toF32, nullptr);
    EXPECT_NE(t.fromF32, nullptr);
    EXPECT_NE(t.axpy, nullptr);
    EXPECT_GE(t.roundTripError, 0.f);
    EXPECT_LT(t.roundTripError, 0.5f);
  }
}

// Every computable type has the f32 dot, and the quantised-activation dot
// exactly where its products use that format, in the portable set and (on
// an x86 build) in the AVX2 set.
TEST(TypeTraits, DotKernelsForEveryClaimedActivationFormat) {
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    std::vector<const TypeKernels *> sets = {&t.portable};
#ifdef PINFER_X86
    sets.push_back(&t.avx2);
#else
    EXPECT_EQ(t.avx2.dot, nullptr);
#endif
    for (const TypeKernels *k : sets) {
      EXPECT_NE(k->dot, nullptr);
      EXPECT_EQ(k->dotQ8 != nullptr, t.act == ActFormat::Q8);
    }
    // The quantised activation comes in QK8_0 blocks, a whole number of
    // them per weight block.
    if (t.act == ActFormat::Q8) {
      EXPECT_EQ(t.blockSize % uint32_t(QK8_0), 0u);
    }
    EXPECT_EQ(usesQ8Act(type), t.act == ActFormat::Q8);
  }
}

TEST(TypeTraits, RoundTripWithinTheRowsError) {
  const int64_t n = 4096;
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    const std::vector<float> x = sample(n, 7);
    std::vector<uint8_t> bytes(rowBytes(type, n));
    std::vector<float> back(n);
    ASSERT_TRUE(quantizeRow(type, x.data(), bytes.data(), n));
    ASSERT_TRUE(dequantizeRow(type, bytes.data(), back.data(), n));
    for (int64_t b = 0; b < n; b += t.blockSize) {
      float amax = 0;
      for (int64_t i = b; i < b + t.blockSize; ++i)
        amax = std::max(amax, std::fabs(x[i]));
      for (int64_t i = b; i < b + t.blockSize; ++i)
        ASSERT_LE(std::fabs(back[i] - x[i]), t.roundTripError * amax)
            << "element " << i << ": " << x[i] << " -> " << back[i];
    }
  }
}

// The row's kernels compute what its dequantisation says, in both sets.
TEST(TypeTraits, KernelsAgreeWithDequantisation) {
  const int64_t n = 1024;
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    const std::vector<float> w = sample(n, 11), x = sample(n, 13);
    std::vector<uint8_t> row(rowBytes(type, n));
    ASSERT_TRUE(quantizeRow(type, w.data(), row.data(), n));
    std::vector<float> wq(n);
    t.toF32(row.data(), wq.data(), n);
    std::vector<BlockQ8Act> xq(n / QK8_0);
    quantizeActQ8(x.data(), xq.data(), n);
    std::vector<float> xqf(n);
    for (int64_t i = 0; i < n; ++i)
      xqf[i] = xq[i / QK8_0].d * float(xq[i / QK8_0].qs[i % QK8_0]);
    double ref = 0, refQ = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      ref += double(wq[i]) * x[i];
      refQ += double(wq[i]) * xqf[i];
      mag += std::fabs(double(wq[i]) * x[i]);
    }
    std::vector<const TypeKernels *> sets = {&t.portable};
    if (kernelIsaIsAvx2())
      sets.push_back(&t.avx2);
    for (const TypeKernels *k : sets) {
      // f32 sums of 1024 terms in another order than the reference's.
      EXPECT_NEAR(k->dot(row.data(), x.data(), n), ref, 1e-4 * mag);
      if (k->dotQ8) {
        EXPECT_NEAR(k->dotQ8(row.data(), xq.data(), n), refQ, 1e-4 * mag);
      }
    }
    std::vector<float> y(n, 0.5f);
    t.axpy(row.data(), 2.f, y.data(), 0, n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(y[i], 0.5f + 2.f * wq[i], 1e-5f * (1.f + std::fabs(wq[i])))
          << i;
  }
}

// A transposed down row in the row's layout: Rows keep a float type's own
// type and decode a block format's to f32, split layouts keep 8 or 4 bits
// per output beside f16 scales of 32-neuron source blocks; the AVX2
// accumulation of rows exists for the types Rows are stored in.
TEST(TypeTraits, DownLayoutsAgreeWithTheType) {
  const int64_t nEmbd = 256;
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    switch (t.downLayout) {
    case DownLayout::Rows: {
      const GGMLType rows = t.downRowsType;
      EXPECT_EQ(transposedDownType(type), rows);
      // A column of blocks is not a row: block formats decode to f32.
      EXPECT_EQ(rows, t.blockSize == 1 ? type : GGMLType::F32);
      EXPECT_EQ(transposedDownRowBytes(type, nEmbd), rowBytes(rows, nEmbd));
      EXPECT_EQ(typeTraits(rows)->downRowsType, rows);
#ifdef PINFER_X86
      EXPECT_NE(typeTraits(rows)->avx2.axpyRows, nullptr);
#endif
      break;
    }
    case DownLayout::SplitQ8:
    case DownLayout::SplitQ4: {
      const bool q4 = t.downLayout == DownLayout::SplitQ4;
      EXPECT_EQ(transposedDownType(type), GGMLType::I8);
      EXPECT_EQ(transposedDownRowBytes(type, nEmbd),
                size_t(q4 ? nEmbd / 2 : nEmbd));
      EXPECT_EQ(t.blockSize, uint32_t(QK8_0));
      // An f16 scale and the quants: what the split packers copy.
      EXPECT_EQ(t.typeSize, 2u + t.blockSize * (q4 ? 4 : 8) / 8);
      break;
    }
    case DownLayout::Source:
      ADD_FAILURE() << "Source is a layer's choice, not a type's layout";
      break;
    }
    // A file's own transposed rows are kept where the type's rows can be
    // accumulated as they are: float types, Q8_0 and Q4_0.
    EXPECT_EQ(t.keepsTransposedRows,
              t.blockSize == 1 || type == GGMLType::Q8_0 ||
                  type == GGMLType::Q4_0);
    EXPECT_EQ(packedTypeOfTransposed(type),
              t.keepsTransposedRows ? type : GGMLType::F32);
#ifdef PINFER_X86
    EXPECT_EQ(t.avx2.axpyRows != nullptr, t.keepsTransposedRows);
#endif
  }
}

// The dialect's dtype is the GGMLType itself: every computable type prints
// as its name and parses back, and nothing else is a dtype.
TEST(TypeTraits, DialectDTypeRoundTrips) {
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  for (GGMLType type : computableTypes()) {
    const TypeTraits &t = *typeTraits(type);
    SCOPED_TRACE(t.name);
    const std::string text =
        "!pinfer.weight<" + std::string(t.name) + ", [256, 2]>";
    mlir::Type parsed = mlir::parseType(text, &ctx);
    ASSERT_TRUE(parsed);
    auto w = mlir::dyn_cast<WeightType>(parsed);
    ASSERT_TRUE(w);
    EXPECT_EQ(w.getDtype(), type);
    std::string printed;
    llvm::raw_string_ostream os(printed);
    parsed.print(os);
    EXPECT_EQ(os.str(), text);
    EXPECT_EQ(WeightType::get(&ctx, type, {256, 2}), w);
    EXPECT_EQ(storedRowBytes(type, 256), int64_t(rowBytes(type, 256)));
  }
  // A recognised but not computable type, an unknown name, and a name in
  // the wrong case are not dtypes.
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  for (const char *bad : {"q8_1", "q9_9", "Q4_0"})
    EXPECT_FALSE(mlir::parseType(
        "!pinfer.weight<" + std::string(bad) + ", [64, 2]>", &ctx))
        << bad;
  EXPECT_FALSE(WeightType::getChecked(
      [&] { return mlir::emitError(mlir::UnknownLoc::get(&ctx)); }, &ctx,
      GGMLType::Q8_1, llvm::ArrayRef<int64_t>{64, 2}));
}

// The CUDA prelude defines the device functions each computable row names.
TEST(TypeTraits, CudaPreludeDefinesTheRowsDeviceFunctions) {
  const std::string source = emitCuda(ProgramDesc()).source;
  for (GGMLType type : computableTypes()) {
    const std::string s = typeTraits(type)->cudaSuffix;
    // A row's dot products with a group of tokens (its own body or one
    // shared with other types), and with one; block types' with 8-bit
    // and with f32 activations.
    if (usesQ8Act(type)) {
      EXPECT_TRUE(source.find("PF_DOTS_Q8(" + s + ",") != std::string::npos ||
                  source.find("PF_DOTS_Q8A(" + s + ",") != std::string::npos)
          << s;
      EXPECT_NE(source.find("PF_DOT1_Q8(" + s + ")"), std::string::npos) << s;
    } else {
      EXPECT_TRUE(source.find("void pf_dots_" + s + "(") != std::string::npos ||
                  source.find("PF_DOTS_AS(" + s + ",") != std::string::npos)
          << s;
      EXPECT_NE(source.find("PF_DOT1(" + s + ")"), std::string::npos) << s;
    }
    EXPECT_NE(source.find("float pf_at_" + s + "("), std::string::npos) << s;
  }
}

} // namespace
