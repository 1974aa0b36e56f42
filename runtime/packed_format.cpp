// The packed weights' content hash; see packed_format.h.
#include "runtime/packed_format.h"

#include "runtime/gguf.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

namespace pinfer {

namespace {

constexpr uint64_t kHashMul = 0x9E3779B97F4A7C15ull;

// Four independent multiply-xorshift lanes over 8-byte words, so that one
// thread hashes near memory speed.
uint64_t hashChunk(const uint8_t *p, size_t n) {
  uint64_t lanes[4] = {0x243F6A8885A308D3ull, 0x13198A2E03707344ull,
                       0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lanes[l] = (lanes[l] ^ w) * kHashMul;
      lanes[l] ^= lanes[l] >> 29;
    }
  uint64_t h = n;
  for (; i < n; ++i)
    h = (h ^ p[i]) * kHashMul;
  for (uint64_t lane : lanes)
    h = ((h ^ lane) * kHashMul) ^ (h >> 31);
  return h;
}

} // namespace

uint64_t packedWeightsHash(const GGUFFile &file, int nThreads,
                           size_t chunkBytes, bool releasePages) {
  // Chunks hashed independently, by up to nThreads threads, then combined
  // in order: the start-up check of a large file reads it with every
  // core's share of the memory (or disk) bandwidth.
  const size_t kChunk = std::max<size_t>(chunkBytes, 1);
  uint64_t begin = std::min<uint64_t>(file.dataOffset(), file.fileSize());
  const uint8_t *p = file.base() + begin;
  const size_t n = size_t(file.fileSize() - begin);
  const size_t nChunks = (n + kChunk - 1) / kChunk;
  std::vector<uint64_t> chunks(nChunks);
  auto work = [&](size_t first, size_t step) {
    for (size_t c = first; c < nChunks; c += step) {
      const size_t len = std::min(kChunk, n - c * kChunk);
      chunks[c] = hashChunk(p + c * kChunk, len);
      if (releasePages)
        file.releasePages(begin + c * kChunk, len);
    }
  };
  const size_t nt = std::max<size_t>(1, std::min<size_t>(size_t(std::max(nThreads, 1)), nChunks));
  std::vector<std::thread> threads;
  for (size_t t = 1; t < nt; ++t)
    threads.emplace_back(work, t, nt);
  work(0, nt);
  for (std::thread &t : threads)
    t.join();
  uint64_t h = n;
  for (uint64_t c : chunks)
    h = ((h ^ c) * kHashMul) ^ (h >> 31);
  return h;
}

std::string formatPackedHash(uint64_t hash) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, hash);
  return buf;
}

bool parsePackedHash(const std::string &text, uint64_t &out) {
  if (text.size() != 16)
    return false;
  out = 0;
  for (char c : text) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0)
      return false;
    out = out << 4 | uint64_t(d);
  }
  return true;
}

} // namespace pinfer
