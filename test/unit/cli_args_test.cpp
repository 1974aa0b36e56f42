// Tests the generation flags shared by `pinferc run` and every generated
// executable: values land in the options, both --flag value and
// --flag=value forms work, and every bad input is one line naming the flag.
#include "runtime/cli_args.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

using namespace pinfer;

namespace {

bool parse(std::vector<std::string> args, GenerateFlags &out,
           std::string &error) {
  out = GenerateFlags();
  error.clear();
  return parseGenerateFlags(args, out, error);
}

} // namespace

TEST(CliArgs, DefaultsWhenNothingIsGiven) {
  GenerateFlags f;
  std::string error;
  ASSERT_TRUE(parse({}, f, error)) << error;
  EXPECT_EQ(f.gen.nPredict, 128);
  EXPECT_EQ(f.gen.nThreads, 0);
  EXPECT_EQ(f.gen.pollMicros, GenerateOptions::kDefaultPollMicros);
  EXPECT_TRUE(f.gen.addBos);
  EXPECT_TRUE(f.gen.parseSpecial);
  EXPECT_FALSE(f.gen.json);
  EXPECT_FALSE(f.help);
}

TEST(CliArgs, ValuesInBothForms) {
  GenerateFlags f;
  std::string error;
  ASSERT_TRUE(parse({"-p", "hello there", "-n", "7", "--threads=3", "--poll",
                     "0", "-c", "512", "--temp=0", "--top-k", "5", "--top-p",
                     "0.5", "--repeat-penalty", "1.1", "--repeat-last-n",
                     "32", "-s", "42", "--json", "--no-bos",
                     "--no-display-prompt", "--no-parse-special",
                     "model.gguf"},
                    f, error))
      << error;
  EXPECT_EQ(f.gen.prompt, "hello there");
  EXPECT_EQ(f.gen.nPredict, 7);
  EXPECT_EQ(f.gen.nThreads, 3);
  EXPECT_EQ(f.gen.pollMicros, 0);
  EXPECT_EQ(f.gen.nCtx, 512);
  EXPECT_EQ(f.gen.sampling.temperature, 0.f);
  EXPECT_EQ(f.gen.sampling.topK, 5);
  EXPECT_FLOAT_EQ(f.gen.sampling.topP, 0.5f);
  EXPECT_FLOAT_EQ(f.gen.sampling.repeatPenalty, 1.1f);
  EXPECT_EQ(f.gen.sampling.repeatLastN, 32);
  EXPECT_EQ(f.gen.sampling.seed, 42u);
  EXPECT_TRUE(f.gen.json);
  EXPECT_FALSE(f.gen.addBos);
  EXPECT_FALSE(f.gen.echoPrompt);
  EXPECT_FALSE(f.gen.parseSpecial);
  EXPECT_EQ(f.positional, std::vector<std::string>{"model.gguf"});
}

// Tests llama.cpp's --min-p, --ignore-eos, repeatable -r/--reverse-prompt,
// -f - (standard input, read by the caller) and --version.
TEST(CliArgs, LlamaCppHabits) {
  GenerateFlags f;
  std::string error;
  ASSERT_TRUE(parse({"--min-p", "0.05", "--ignore-eos", "-r", "User:",
                     "--reverse-prompt=###", "-f", "-", "--version"},
                    f, error))
      << error;
  EXPECT_FLOAT_EQ(f.gen.sampling.minP, 0.05f);
  EXPECT_TRUE(f.gen.ignoreEos);
  EXPECT_EQ(f.gen.stopStrings, (std::vector<std::string>{"User:", "###"}));
  EXPECT_EQ(f.promptFile, "-");
  EXPECT_TRUE(f.version);
  EXPECT_FALSE(parse({"-r", ""}, f, error));
  EXPECT_EQ(error, "-r: expected a non-empty string");
  EXPECT_FALSE(parse({"--min-p", "2"}, f, error));
}

// Tests -b/-ub: a prompt chunk is the smaller of the two given, either
// alone sets it, neither leaves the default (0: 32 tokens).
TEST(CliArgs, BatchSizes) {
  GenerateFlags f;
  std::string error;
  ASSERT_TRUE(parse({}, f, error)) << error;
  EXPECT_EQ(f.gen.nBatch, 0);
  ASSERT_TRUE(parse({"-b", "8", "-ub", "3"}, f, error)) << error;
  EXPECT_EQ(f.gen.nBatch, 3);
  GenerateFlags g;
  ASSERT_TRUE(parse({"--ubatch-size=64", "--batch-size", "16"}, g, error))
      << error;
  EXPECT_EQ(g.gen.nBatch, 16);
  GenerateFlags h;
  ASSERT_TRUE(parse({"-ub", "7"}, h, error)) << error;
  EXPECT_EQ(h.gen.nBatch, 7);
  EXPECT_FALSE(parse({"-b", "0"}, h, error));
  EXPECT_EQ(error, "-b: expected an integer in [1, 512], got '0'");
}

TEST(CliArgs, BadInputIsOneLineNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    const char *mentions;
  } cases[] = {
      {{"--poll", "-1"}, "--poll: expected an integer in [0, 1000000]"},
      {{"--poll", "fast"}, "--poll: expected an integer"},
      {{"-t", "0"}, "-t: expected an integer in [1, 1024]"},
      {{"-n"}, "-n: expected a value"},
      {{"--top-p", "2"}, "--top-p: expected a number"},
      {{"--temp", "x"}, "--temp: expected a number"},
      {{"--frobnicate"}, "unknown flag '--frobnicate'"},
  };
  for (const Case &c : cases) {
    GenerateFlags f;
    std::string error;
    EXPECT_FALSE(parse(c.args, f, error)) << c.args[0];
    EXPECT_NE(error.find(c.mentions), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

// Tests what llama-cli users type: -p's escapes (on unless --no-escape),
// any 32-bit seed (so every reported seed replays), -c 0 for the model's
// context, and flags without effect here taken with a note or silently.
TEST(CliArgs, LlamaCliCompatibility) {
  GenerateFlags f;
  std::string error;
  ASSERT_TRUE(parse({"-p", "a\\nb\\tc\\\\d\\\"e\\x41\\q"}, f, error)) << error;
  EXPECT_EQ(f.gen.prompt, "a\nb\tc\\d\"eA\\q");
  ASSERT_TRUE(parse({"-e", "-p", "x\\n"}, f, error)) << error;
  EXPECT_EQ(f.gen.prompt, "x\n");
  ASSERT_TRUE(parse({"--no-escape", "-p", "x\\n"}, f, error)) << error;
  EXPECT_EQ(f.gen.prompt, "x\\n");
  // A trailing backslash, a short \x: kept.
  EXPECT_EQ(processEscapes("end\\"), "end\\");
  EXPECT_EQ(processEscapes("\\x4"), "\\x4");

  ASSERT_TRUE(parse({"-s", "3826093120"}, f, error)) << error;
  EXPECT_EQ(f.gen.sampling.seed, 3826093120u);
  ASSERT_TRUE(parse({"-s", "-1"}, f, error)) << error;
  EXPECT_EQ(f.gen.sampling.seed, SamplerOptions::kRandomSeed);
  EXPECT_FALSE(parse({"-s", "4294967296"}, f, error));
  EXPECT_EQ(error, "-s: expected an integer in [-1, 4294967295], got "
                   "'4294967296'");

  ASSERT_TRUE(parse({}, f, error)) << error;
  EXPECT_LT(f.gen.nCtx, 0); // the model's, at most 4096
  ASSERT_TRUE(parse({"-c", "0"}, f, error)) << error;
  EXPECT_EQ(f.gen.nCtx, GenerateOptions::kModelContext);

  // llama.cpp's negative temperature (greedy) and top-k (no limit).
  ASSERT_TRUE(parse({"--temp", "-1", "--top-k", "-1"}, f, error)) << error;
  EXPECT_EQ(f.gen.sampling.temperature, 0.f);
  EXPECT_EQ(f.gen.sampling.topK, 0);

  ASSERT_TRUE(parse({"-no-cnv", "--no-warmup", "-ngl", "99"}, f, error))
      << error;
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_NE(f.notes[0].find("-ngl has no effect"), std::string::npos)
      << f.notes[0];
  EXPECT_FALSE(parse({"-ngl", "many"}, f, error));
}

// Tests -f's file: its last newline off, as llama.cpp reads it; a
// directory or a missing file is one line.
TEST(CliArgs, PromptFile) {
  const std::string path = ::testing::TempDir() + "/prompt.txt";
  {
    std::ofstream out(path);
    out << "The capital of France is\n";
  }
  std::string prompt, error;
  ASSERT_TRUE(readPromptFile(path, prompt, error)) << error;
  EXPECT_EQ(prompt, "The capital of France is");
  EXPECT_FALSE(readPromptFile(::testing::TempDir(), prompt, error));
  EXPECT_NE(error.find("is a directory"), std::string::npos) << error;
  EXPECT_FALSE(readPromptFile(path + ".missing", prompt, error));
  EXPECT_NE(error.find("cannot read the prompt file"), std::string::npos)
      << error;
  std::remove(path.c_str());
}
