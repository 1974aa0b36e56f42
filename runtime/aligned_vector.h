// std::vector whose storage starts on a 64-byte boundary: the activation
// rows that the AVX-512 kernels read 64 bytes at a time. Large vectors from
// the default allocator start 16 bytes past a page, so every such load
// would straddle two cache lines and cost two.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace pinfer {

template <class T> struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U> CacheLineAllocator(const CacheLineAllocator<U> &) {}
  T *allocate(std::size_t n) {
    return static_cast<T *>(::operator new(n * sizeof(T), kAlign));
  }
  void deallocate(T *p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U> bool operator==(const CacheLineAllocator<U> &) const {
    return true;
  }
  template <class U> bool operator!=(const CacheLineAllocator<U> &) const {
    return false;
  }
};

template <class T> using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

} // namespace pinfer
