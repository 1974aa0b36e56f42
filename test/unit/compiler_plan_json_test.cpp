// Regression tests for what fuzzing planFromJson (test/fuzz/plan_fuzz.cpp,
// docs/fuzzing.md) turned up: an allocation sized by the untrusted n_ff,
// errors that quoted control characters of the input (breaking the
// one-line rule), and numbers the table and the compiler cannot use
// (negative or huge byte counts, shares outside [0, 1], bill lines that
// overflow).
#include "compiler/placement/Plan.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <sstream>
#include <string>

// The largest single allocation through operator new, to show that a plan's
// n_ff does not size one.
static std::atomic<size_t> gLargestNew{0};

void *operator new(size_t n) {
  size_t seen = gLargestNew.load();
  while (n > seen && !gLargestNew.compare_exchange_weak(seen, n)) {
  }
  if (void *p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }

using namespace pinfer;

namespace {

// One layer of three neurons; `extra` is spliced in after "n_ff".
std::string plan(const std::string &nFF = "3", const std::string &extra = "",
                 const std::string &layer = "") {
  return "{\"format\": \"pinferc-plan\", \"version\": 1, \"n_layer\": 1, "
         "\"n_ff\": " + nFF + ", " + extra +
         "\"bill\": [{\"what\": \"x\", \"bytes\": 5}], \"bill_bytes\": 5, "
         "\"layers\": [{\"n_hot\": 1, \"hot_granules\": 1, \"n_granules\": 1, "
         "\"coverage\": 0.5, " + layer + "\"order\": [2, 0, 1]}]}";
}

std::string parseError(const std::string &text) {
  Plan p;
  std::string err;
  EXPECT_FALSE(planFromJson(text, "bad.json", p, err));
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_EQ(err.rfind("bad.json: ", 0), 0u) << err;
  return err;
}

} // namespace

// Tests that the base plan is accepted, so that each refusal below is the
// change's doing.
TEST(PlanJsonFuzzed, BasePlanIsAccepted) {
  Plan p;
  std::string err;
  ASSERT_TRUE(planFromJson(plan(), "ok.json", p, err)) << err;
  EXPECT_EQ(p.layers.at(0).order, (std::vector<uint32_t>{2, 0, 1}));
  std::ostringstream table;
  printPlanTable(table, p);
  EXPECT_NE(table.str().find("1/3"), std::string::npos) << table.str();
}

// Tests that a huge n_ff with a short order is refused without allocating
// n_ff bytes first (it allocated 4 GB for this 300-byte file).
TEST(PlanJsonFuzzed, HugeNffAllocatesNothingOfItsSize) {
  gLargestNew = 0;
  std::string err = parseError(plan("4000000000"));
  EXPECT_LT(gLargestNew.load(), size_t(1) << 20);
  EXPECT_NE(err.find("3 entries, expected n_ff = 4000000000"),
            std::string::npos)
      << err;
}

// Tests that control characters of the input appear as \xNN in errors.
TEST(PlanJsonFuzzed, ErrorsStayOneLine) {
  std::string err = parseError("{\"a\\\n\": 1}");
  EXPECT_NE(err.find("invalid JSON): parse error at line 2"), std::string::npos)
      << err;
  EXPECT_NE(err.find("'\"a\\<U+000A>'"), std::string::npos) << err;
  err = parseError("{\"a\"\x01");
  EXPECT_NE(err.find("<U+0001>'; expected ':'"), std::string::npos) << err;
  for (const std::string &e : {err, parseError("{\"a\"\x7f")})
    for (char c : e)
      EXPECT_FALSE((unsigned char)c < 0x20 || c == 0x7f) << e;
  std::string text = plan();
  text.replace(text.find("\"pinferc-plan\""), 14, "\"a\\nb\\u007f\"");
  err = parseError(text);
  EXPECT_NE(err.find("key format: found 'a\\x0ab\\x7f'"), std::string::npos)
      << err;
}

// Tests that numbers the table prints as byte counts, and shares, are
// range-checked.
TEST(PlanJsonFuzzed, NumbersOutOfRangeAreRefused) {
  EXPECT_NE(parseError(plan("3", "\"gpu_bytes_per_token\": -5088, "))
                .find("key gpu_bytes_per_token: found -5088, expected a "
                      "value in [0, 1.8e+19]"),
            std::string::npos);
  EXPECT_NE(parseError(plan("3", "\"upper_bound\": 1e300, "))
                .find("key upper_bound: found 1e+300"),
            std::string::npos);
  EXPECT_NE(parseError(plan("3", "\"dp_seconds\": -1, "))
                .find("key dp_seconds: found -1"),
            std::string::npos);
  EXPECT_NE(parseError(plan("3", "", "\"cpu_bytes_per_token\": -1, "))
                .find("key layers[0].cpu_bytes_per_token: found -1"),
            std::string::npos);
  std::string text = plan();
  text.replace(text.find("0.5"), 3, "1.5");
  EXPECT_NE(parseError(text).find(
                "key layers[0].coverage: found 1.5, expected a value in [0, 1]"),
            std::string::npos);
  EXPECT_NE(parseError(plan("3", "", "\"curve\": [[0, 2]], "))
                .find("key layers[0].curve: found 2"),
            std::string::npos);
}

// Tests that bill lines whose sum wraps around 64 bits to bill_bytes are
// refused.
TEST(PlanJsonFuzzed, BillOverflowIsRefused) {
  const std::string line = "{\"what\": \"x\", \"bytes\": 5}";
  std::string text = plan();
  text.replace(text.find(line), line.size(),
               "{\"what\": \"x\", \"bytes\": 18446744073709551615}, "
               "{\"what\": \"y\", \"bytes\": 6}");
  EXPECT_NE(parseError(text).find("key bill: the lines' bytes overflow 64 bits"),
            std::string::npos);
}
