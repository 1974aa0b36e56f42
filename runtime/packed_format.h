// The packed weights file's format: the keys a compiled executable checks
// its weights file by, and the content hash that binds the two (written by
// codegen/PackedWeights.cpp and the compiler, read by runtime/exec_main.cpp).
// The file's tensors and their layouts are described in
// codegen/PackedWeights.h and runtime/ggml_types.h (DownLayout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pinfer {

class GGUFFile;

constexpr const char *kPackedVersionKey = "pinfer.packed.version";
constexpr const char *kPackedHashKey = "pinfer.packed.hash"; // 16 hex digits
constexpr const char *kPackedHotKey = "pinfer.packed.n_hot"; // i32 per layer
// The names of the Q4_0 tensors stored with their rows scales first
// (runtime/ggml_types.h, q4_0ToScalesFirst): those only the CPU multiplies.
constexpr const char *kPackedScalesFirstKey = "pinfer.packed.scales_first";
// i32 per layer: 1 where the source's down projection multiplies an 8-bit
// quantised input (a block type, runtime/ggml_types.h usesQ8Act), which the
// executable then quantises in source blocks where the layer is wholly on
// the CPU, as the dense reference does.
constexpr const char *kPackedDownQ8Key = "pinfer.packed.down_q8";
// 2: split down layouts; 3: Q4_0 CPU rows scales first; 4: down_q8.
constexpr uint32_t kPackedVersion = 4;

// 64-bit content hash of the file's tensor data section (everything from
// dataOffset() to the end of the file) in chunks of `chunkBytes` (the
// format's value is the default), computed by up to `nThreads` threads;
// the value does not depend on the thread count.
// With `releasePages`, each chunk's pages leave the resident set once hashed
// (GGUFFile::releasePages): for the compiler, which only writes the file.
uint64_t packedWeightsHash(const GGUFFile &file, int nThreads = 1,
                           size_t chunkBytes = size_t(64) << 20,
                           bool releasePages = false);
std::string formatPackedHash(uint64_t hash); // 16 lower-case hex digits
bool parsePackedHash(const std::string &text, uint64_t &out);

} // namespace pinfer
