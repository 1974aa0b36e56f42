// Test only: compiles pinferc's emitted CUDA C++ as host C++, so that its
// kernels run in ctest on a machine without a GPU, through real code paths
// (never installed, never found by a user's executable).
//
// Each thread of a block is a fiber on one OS thread; blocks run
// one after another. Warp shuffles and __syncthreads are rendezvous points:
// a fiber that reaches one yields until its partners have, so values move
// between lanes as on the GPU. What the GPU leaves undefined is reported and
// stops the launch: a shuffle that names an exited lane or one outside the
// block, lanes that disagree on a shuffle's mask, a barrier that a thread of
// the block returned without reaching, and deadlock. Shared memory is a
// function-local static: one block runs at a time, so it is per block. The
// warps run one at a time, each to its next barrier (runBlock), so that a
// missing barrier between warps' uses of shared memory shows.
//
// A file that includes this header, then the emitted source, then
// PF_SHIM_KERNELS(PF_SHIM_ENTRY(name) ...) exports pf_shim_params and
// pf_shim_launch, which
// test/cuda_host/driver_standin.cpp (the libcuda stand-in) calls.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define PF_SHIM_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __constant__ const
#define __launch_bounds__(...)

namespace pf_shim {

// Switching fibers: on x86-64 a few instructions that save the callee-saved
// registers and the stack pointer of one fiber and load another's (kernels
// switch at every shuffle: glibc's swapcontext makes a system call each
// time); elsewhere ucontext.
#if defined(__x86_64__)
struct Context {
  void *sp = nullptr;
};
__attribute__((naked, noinline)) inline void switchStacks(void **save,
                                                          void *load) {
  asm volatile("pushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\t"
               "pushq %r14\n\tpushq %r15\n\t"
               "movq %rsp, (%rdi)\n\tmovq %rsi, %rsp\n\t"
               "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\t"
               "popq %rbx\n\tpopq %rbp\n\tret\n\t");
}
inline void swapTo(Context &from, Context &to) { switchStacks(&from.sp, to.sp); }
// A fresh context that starts `entry` (which never returns) on the stack.
inline void makeContext(Context &c, char *stack, size_t bytes,
                        void (*entry)()) {
  uintptr_t top = (uintptr_t(stack) + bytes) & ~uintptr_t(15);
  void **sp = reinterpret_cast<void **>(top);
  *--sp = nullptr;                           // entry's return address
  *--sp = reinterpret_cast<void *>(entry);   // where the first switch returns
  for (int i = 0; i < 6; ++i)
    *--sp = nullptr;                         // rbp rbx r12-r15
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
inline void swapTo(Context &from, Context &to) { swapcontext(&from.uc, &to.uc); }
inline void makeContext(Context &c, char *stack, size_t bytes,
                        void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};

enum class Wait { None, Shuffle, Barrier, Done };

struct Thread {
  Context ctx;
  char *stack = nullptr;
  Wait wait = Wait::None;
  unsigned shuffles = 0; // its shuffle count: the rendezvous' parity
  unsigned linear = 0;   // x + y * bx + z * bx * by
  dim3 idx;
#ifdef PF_SHIM_ASAN
  void *fakeStack = nullptr;
#endif
};

// One warp's rendezvous: two rounds in flight at most (a lane cannot start
// round n + 2 before every lane has finished reading round n).
struct Warp {
  unsigned arrived[2] = {0, 0}, consumed[2] = {0, 0}, mask[2] = {0, 0};
  unsigned long long slot[2][32] = {};
};

constexpr size_t kStackBytes = 256 << 10;

struct Launch {
  const char *kernel = "";
  dim3 grid, block, blockIdx;
  void (*thunk)(void **) = nullptr;
  void **args = nullptr;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  unsigned current = 0;
  Context sched;
  std::string error;
  unsigned barrierArrived = 0, barrierGen = 0;
  unsigned long long progress = 0; // arrivals, reads and exits
  const void *schedBottom = nullptr;
  size_t schedSize = 0;
};

inline Launch *&active() {
  static Launch *launch = nullptr;
  return launch;
}
inline Thread &self() { return active()->threads[active()->current]; }

// Back to the scheduler; returns when the scheduler resumes this thread.
inline void yield() {
  Launch &L = *active();
  Thread &t = self();
#ifdef PF_SHIM_ASAN
  __sanitizer_start_switch_fiber(&t.fakeStack, L.schedBottom, L.schedSize);
#endif
  swapTo(t.ctx, L.sched);
#ifdef PF_SHIM_ASAN
  __sanitizer_finish_switch_fiber(t.fakeStack, &L.schedBottom, &L.schedSize);
#endif
}

// Records the first error of the launch and parks the thread for good: the
// scheduler stops the launch when it sees the error. `what` is a format
// with one %u; nothing here allocates, since the parked fiber's frame is
// never unwound.
[[noreturn]] inline void fail(const char *what, unsigned arg = 0) {
  Launch &L = *active();
  if (L.error.empty()) {
    char text[320];
    int n = snprintf(text, sizeof text, what, arg);
    snprintf(text + n, sizeof text - size_t(n),
             " (kernel %s, block (%u,%u,%u), thread %u)", L.kernel,
             L.blockIdx.x, L.blockIdx.y, L.blockIdx.z, self().linear);
    L.error = text;
  }
  for (;;)
    yield();
}

inline void threadMain() {
  Launch &L = *active();
#ifdef PF_SHIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &L.schedBottom, &L.schedSize);
#endif
  L.thunk(L.args);
  Thread &t = self();
  t.wait = Wait::Done;
  ++L.progress;
#ifdef PF_SHIM_ASAN
  __sanitizer_start_switch_fiber(nullptr, L.schedBottom, L.schedSize);
#endif
  Context done; // never resumed
  swapTo(done, L.sched);
  __builtin_unreachable();
}

// The value of `v` held by lane `src` of the calling warp, once every lane
// of `mask` has arrived.
// With `all`, every lane's value of the round is copied there too.
inline unsigned long long exchange(unsigned mask, unsigned long long v, int src,
                                   unsigned long long *all = nullptr) {
  Launch &L = *active();
  Thread &t = self();
  const unsigned lane = t.linear & 31, warp = t.linear >> 5;
  const unsigned warpBase = warp * 32;
  const unsigned inBlock = unsigned(L.threads.size()) - warpBase;
  Warp &w = L.warps[warp];
  if (!(mask >> lane & 1))
    fail("shuffle: the calling lane is not in its mask");
  for (unsigned j = 0; j < 32; ++j)
    if ((mask >> j & 1) && j >= inBlock)
      fail("shuffle: mask names lane %u, beyond the block", j);
  const unsigned p = t.shuffles++ & 1;
  if (w.arrived[p] == 0)
    w.mask[p] = mask;
  else if (w.mask[p] != mask)
    fail("shuffle: lanes of one warp disagree on the mask");
  w.slot[p][lane] = v;
  w.arrived[p] |= 1u << lane;
  ++L.progress;
  while ((w.arrived[p] & mask) != mask) {
    for (unsigned j = 0; j < 32; ++j)
      if ((mask >> j & 1) && !(w.arrived[p] >> j & 1) &&
          L.threads[warpBase + j].wait == Wait::Done)
        fail("shuffle: includes lane %u, which has exited", j);
    t.wait = Wait::Shuffle;
    yield();
  }
  t.wait = Wait::None;
  const unsigned from = unsigned(src) & 31;
  if (!(mask >> from & 1))
    fail("shuffle: reads lane %u, which is not in the mask", from);
  const unsigned long long r = w.slot[p][from];
  if (all)
    memcpy(all, w.slot[p], sizeof w.slot[p]);
  w.consumed[p] |= 1u << lane;
  ++L.progress;
  if (w.consumed[p] == mask)
    w.arrived[p] = w.consumed[p] = 0;
  return r;
}

template <class T> T shuffle(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                "shuffles move 8 bytes at most");
  unsigned long long bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = exchange(mask, bits, src);
  T r;
  memcpy(&r, &bits, sizeof r);
  return r;
}

inline unsigned laneId() { return self().linear & 31; }

inline void syncthreads() {
  Launch &L = *active();
  Thread &t = self();
  const unsigned gen = L.barrierGen;
  ++L.barrierArrived;
  ++L.progress;
  while (L.barrierGen == gen) {
    t.wait = Wait::Barrier;
    yield();
  }
  t.wait = Wait::None;
}

// Runs every thread of the current block; false with L.error set.
inline bool runBlock(Launch &L) {
  const unsigned n = unsigned(L.threads.size());
  for (unsigned i = 0; i < n; ++i) {
    Thread &t = L.threads[i];
    t.wait = Wait::None;
    t.shuffles = 0;
#ifdef PF_SHIM_ASAN
    // A stack abandoned by a failed launch may still be poisoned.
    ASAN_UNPOISON_MEMORY_REGION(t.stack, kStackBytes);
#endif
    makeContext(t.ctx, t.stack, kStackBytes, threadMain);
  }
  for (Warp &w : L.warps)
    w = Warp();
  L.barrierArrived = 0;
  for (;;) {
    const unsigned long long before = L.progress;
    // Warp by warp, each as far as it goes (to a barrier or its end)
    // before the next one starts: one warp then runs as far ahead of the
    // others as the barriers allow, so that shared memory one warp
    // overwrites before another has read it, or reads before another has
    // written it, for want of a barrier, gives wrong values.
    for (unsigned w0 = 0; w0 < n; w0 += 32) {
      const unsigned w1 = w0 + 32 < n ? w0 + 32 : n;
      for (;;) {
        const unsigned long long pass = L.progress;
        for (unsigned i = w0; i < w1; ++i) {
          Thread &t = L.threads[i];
          if (t.wait == Wait::Done)
            continue;
          L.current = i;
#ifdef PF_SHIM_ASAN
          void *fake = nullptr;
          __sanitizer_start_switch_fiber(&fake, t.stack, kStackBytes);
#endif
          swapTo(L.sched, t.ctx);
#ifdef PF_SHIM_ASAN
          __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
          if (!L.error.empty())
            return false;
        }
        if (L.progress == pass)
          break;
      }
    }
    unsigned live = 0;
    for (unsigned i = 0; i < n; ++i)
      live += L.threads[i].wait != Wait::Done;
    if (live == 0)
      return true;
    if (L.barrierArrived > 0 && L.barrierArrived == live) {
      if (live != n) {
        for (unsigned i = 0; i < n; ++i)
          if (L.threads[i].wait == Wait::Done) {
            L.current = i;
            L.error = "__syncthreads: thread " + std::to_string(i) +
                      " of the block returned without reaching it (kernel " +
                      L.kernel + ")";
            return false;
          }
      }
      ++L.barrierGen;
      L.barrierArrived = 0;
      continue;
    }
    if (L.progress == before) {
      L.error = std::string("deadlock: every live thread waits at a shuffle "
                            "or a barrier that cannot complete (kernel ") +
                L.kernel + ")";
      return false;
    }
  }
}

// Launches `thunk` on grid x block; "" or the error.
inline std::string launch(const char *kernel, void (*thunk)(void **),
                          dim3 grid, dim3 block, void **args) {
  const unsigned n = block.x * block.y * block.z;
  if (n == 0 || n > 1024)
    return "launch of " + std::string(kernel) + ": " + std::to_string(n) +
           " threads per block (1..1024)";
  if (grid.x == 0 || grid.y == 0 || grid.z == 0)
    return "launch of " + std::string(kernel) + ": an empty grid";
  static std::vector<char *> stacks; // kept across launches
  while (stacks.size() < n) {
    void *m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
      return "launch of " + std::string(kernel) + ": no memory for stacks";
    stacks.push_back(static_cast<char *>(m));
  }
  Launch L;
  L.kernel = kernel;
  L.grid = grid;
  L.block = block;
  L.thunk = thunk;
  L.args = args;
  L.threads.resize(n);
  L.warps.resize((n + 31) / 32);
  for (unsigned i = 0; i < n; ++i) {
    Thread &t = L.threads[i];
    t.stack = stacks[i];
    t.linear = i;
    t.idx.x = i % block.x;
    t.idx.y = i / block.x % block.y;
    t.idx.z = i / (block.x * block.y);
  }
  Launch *outer = active();
  active() = &L;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        L.blockIdx.x = x;
        L.blockIdx.y = y;
        L.blockIdx.z = z;
        if (!runBlock(L)) {
          active() = outer;
          return L.error;
        }
      }
  active() = outer;
  return "";
}

// Calls a kernel with cuLaunchKernel's argument array: args[i] points at
// parameter i.
template <class... A, size_t... I>
void callWith(void (*f)(A...), void **args, std::index_sequence<I...>) {
  f(*static_cast<std::decay_t<A> *>(args[I])...);
}
template <class... A> void callAll(void (*f)(A...), void **args) {
  callWith(f, args, std::index_sequence_for<A...>{});
}
template <auto F> void thunk(void **args) { callAll(F, args); }

// The byte size of each parameter, so that a launch can copy them as
// cuLaunchKernel does (the caller may reuse its variables at once).
template <class... A> unsigned paramSizes(void (*)(A...), unsigned *out) {
  const unsigned sizes[] = {unsigned(sizeof(std::decay_t<A>))..., 0u};
  for (unsigned i = 0; i < sizeof...(A); ++i)
    out[i] = sizes[i];
  return unsigned(sizeof...(A));
}
template <auto F> unsigned sizesOf(unsigned *out) { return paramSizes(F, out); }

struct Entry {
  const char *name;
  void (*thunk)(void **);
  unsigned (*sizes)(unsigned *);
};

} // namespace pf_shim

#define threadIdx (::pf_shim::self().idx)
#define blockIdx (::pf_shim::active()->blockIdx)
#define blockDim (::pf_shim::active()->block)
#define gridDim (::pf_shim::active()->grid)
#define warpSize 32

inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int laneMask,
                                     int width = 32) {
  return pf_shim::shuffle(mask, v,
                          int(pf_shim::laneId() ^ unsigned(laneMask)) &
                              (width - 1) |
                              int(pf_shim::laneId() & ~unsigned(width - 1)));
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta,
                                      int width = 32) {
  const unsigned lane = pf_shim::laneId();
  const unsigned base = lane & ~unsigned(width - 1);
  const unsigned src = (lane - base) + delta < unsigned(width) ? lane + delta
                                                               : lane;
  return pf_shim::shuffle(mask, v, int(src));
}
template <class T> T __shfl_sync(unsigned mask, T v, int srcLane,
                                 int width = 32) {
  const unsigned base = pf_shim::laneId() & ~unsigned(width - 1);
  return pf_shim::shuffle(mask, v, int(base + (unsigned(srcLane) % width)));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  pf_shim::exchange(mask, 0, int(pf_shim::laneId()));
}
// Bit j set where lane j of the mask passed a true predicate; a
// rendezvous of the mask's lanes, as a shuffle.
inline unsigned __ballot_sync(unsigned mask, int pred) {
  unsigned long long all[32];
  pf_shim::exchange(mask, pred != 0, int(pf_shim::laneId()), all);
  unsigned bits = 0;
  for (unsigned j = 0; j < 32; ++j)
    if ((mask >> j & 1) && all[j])
      bits |= 1u << j;
  return bits;
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline void __syncthreads() { pf_shim::syncthreads(); }
template <class T> T __ldg(const T *p) { return *p; }
// Result byte i is byte (s >> 4i) & 7 of the eight bytes of y:x.
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const uint64_t v = uint64_t(x) | (uint64_t(y) << 32);
  unsigned r = 0;
  for (int i = 0; i < 4; ++i)
    r |= unsigned((v >> (8 * ((s >> (4 * i)) & 7u))) & 255u) << (8 * i);
  return r;
}
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i)
    c += int(int8_t(a >> (8 * i))) * int(int8_t(b >> (8 * i)));
  return c;
}
// mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 (the emitted source
// defines pf_mma_s8 so on the GPU): the whole warp's fragments gathered,
// each element placed by the PTX ISA's formulas ("Matrix Fragments for
// mma.m16n8k32", integer types), with groupID = lane >> 2 and
// threadID_in_group = lane % 4:
//   A a_i (register i / 4, byte i % 4): row groupID for i < 4 or
//     8 <= i < 12, else groupID + 8; column threadID_in_group * 4 + (i & 3),
//     plus 16 for i >= 8
//   B b_i: row threadID_in_group * 4 + (i & 3), plus 16 for i >= 4;
//     column groupID
//   C c_i: row groupID for i < 2, else groupID + 8; column
//     threadID_in_group * 2 + (i & 1)
// Every lane of the warp must take part (a shuffle over the full mask).
namespace pf_shim {
// Every lane's A (four registers) and B (two) fragments, gathered.
struct WarpFragments {
  unsigned a[32][4], b[32][2];
};
inline WarpFragments gatherFragments(const unsigned (&a)[4],
                                     const unsigned (&b)[2]) {
  unsigned long long a01[32], a23[32], bs[32];
  const unsigned full = 0xffffffffu;
  exchange(full, a[0] | (unsigned long long)a[1] << 32, 0, a01);
  exchange(full, a[2] | (unsigned long long)a[3] << 32, 0, a23);
  exchange(full, b[0] | (unsigned long long)b[1] << 32, 0, bs);
  WarpFragments f;
  for (unsigned lane = 0; lane < 32; ++lane) {
    const unsigned regs[4] = {unsigned(a01[lane]), unsigned(a01[lane] >> 32),
                              unsigned(a23[lane]), unsigned(a23[lane] >> 32)};
    memcpy(f.a[lane], regs, sizeof regs);
    f.b[lane][0] = unsigned(bs[lane]);
    f.b[lane][1] = unsigned(bs[lane] >> 32);
  }
  return f;
}
} // namespace pf_shim
inline void pf_mma_s8(int (&c)[4], const unsigned (&a)[4],
                      const unsigned (&b)[2]) {
  const pf_shim::WarpFragments f = pf_shim::gatherFragments(a, b);
  int A[16][32], B[32][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const int group = int(lane >> 2), tig = int(lane % 4);
    const unsigned *regs = f.a[lane];
    for (int i = 0; i < 16; ++i) {
      const int row = (i < 4 || (i >= 8 && i < 12)) ? group : group + 8;
      const int col = tig * 4 + (i & 3) + (i >= 8 ? 16 : 0);
      A[row][col] = int(int8_t(regs[i / 4] >> (8 * (i % 4))));
    }
    const unsigned *bregs = f.b[lane];
    for (int i = 0; i < 8; ++i) {
      const int row = tig * 4 + (i & 3) + (i >= 4 ? 16 : 0);
      B[row][group] = int(int8_t(bregs[i / 4] >> (8 * (i % 4))));
    }
  }
  const int group = int(pf_shim::laneId() >> 2),
            tig = int(pf_shim::laneId() % 4);
  for (int i = 0; i < 4; ++i) {
    const int row = i < 2 ? group : group + 8, col = tig * 2 + (i & 1);
    for (int k = 0; k < 32; ++k)
      c[i] += A[row][k] * B[k][col];
  }
}
namespace pf_shim {
// An IEEE half's value, written apart from the emitted source's pf_h2f.
inline double halfValue(unsigned h) {
  const int e = int((h >> 10) & 31u), m = int(h & 0x3ffu);
  const double v = e == 31  ? (m ? NAN : INFINITY)
                   : e == 0 ? ldexp(double(m), -24)
                            : ldexp(double(1024 + m), e - 25);
  return (h & 0x8000u) ? -v : v;
}
} // namespace pf_shim
namespace pf_shim {
// A bfloat16's value: the high half of an f32.
inline double bfloatValue(unsigned h) {
  float f;
  const unsigned u = h << 16;
  memcpy(&f, &u, 4);
  return f;
}
// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32
// (pf_mma_f16, pf_mma_bf16 on the GPU), by the PTX ISA's formulas
// ("Matrix Fragments for mma.m16n8k16 with floating point type"), element
// i of a register pair of halves in register i / 2, the lower index in the
// low 16 bits:
//   A a_i: row groupID for i in {0, 1, 4, 5}, else groupID + 8; column
//     threadID_in_group * 2 + (i & 1), plus 8 for i >= 4
//   B b_i: row threadID_in_group * 2 + (i & 1), plus 8 for i >= 2;
//     column groupID
//   C as mma.m16n8k32's, f32
// The products are exact and summed in double, rounded once into c.
inline void mma16816(float (&c)[4], const unsigned (&a)[4],
                     const unsigned (&b)[2], double (*value)(unsigned)) {
  const WarpFragments f = gatherFragments(a, b);
  double A[16][16], B[16][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const int group = int(lane >> 2), tig = int(lane % 4);
    const unsigned *regs = f.a[lane];
    for (int i = 0; i < 8; ++i) {
      const int row = (i % 4 < 2) ? group : group + 8;
      const int col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
      A[row][col] = value((regs[i / 2] >> (16 * (i % 2))) & 0xffffu);
    }
    const unsigned *bregs = f.b[lane];
    for (int i = 0; i < 4; ++i) {
      const int row = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
      B[row][group] = value((bregs[i / 2] >> (16 * (i % 2))) & 0xffffu);
    }
  }
  const int group = int(laneId() >> 2), tig = int(laneId() % 4);
  for (int i = 0; i < 4; ++i) {
    const int row = i < 2 ? group : group + 8, col = tig * 2 + (i & 1);
    double sum = c[i];
    for (int k = 0; k < 16; ++k)
      sum += A[row][k] * B[k][col];
    c[i] = float(sum);
  }
}
} // namespace pf_shim
inline void pf_mma_f16(float (&c)[4], const unsigned (&a)[4],
                       const unsigned (&b)[2]) {
  pf_shim::mma16816(c, a, b, pf_shim::halfValue);
}
inline void pf_mma_bf16(float (&c)[4], const unsigned (&a)[4],
                        const unsigned (&b)[2]) {
  pf_shim::mma16816(c, a, b, pf_shim::bfloatValue);
}
// Blocks run one after another: memory written by one is visible to the
// next without a fence.
inline void __threadfence() {}
// Fibers share one OS thread and switch only at rendezvous: plain adds are
// atomic here.
template <class T> T atomicAdd(T *p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T> T atomicExch(T *p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T> T atomicMin(T *p, T v) {
  T old = *p;
  *p = v < old ? v : old;
  return old;
}

// Exports the kernels named: each as a name and a thunk taking
// cuLaunchKernel's argument array.
#define PF_SHIM_ENTRY(name)                                                    \
  {#name, &::pf_shim::thunk<&name>, &::pf_shim::sizesOf<&name>},
#define PF_SHIM_KERNELS(...)                                                   \
  static const ::pf_shim::Entry pf_shim_table[] = {__VA_ARGS__};              \
  /* The parameters' sizes (at most 32); their count, or -1. */             \
  extern "C" int pf_shim_params(const char *name, unsigned *sizes) {          \
    for (const auto &e : pf_shim_table)                                        \
      if (strcmp(e.name, name) == 0)                                           \
        return int(e.sizes(sizes));                                            \
    return -1;                                                                 \
  }                                                                            \
  extern "C" int pf_shim_launch(const char *name, const unsigned *grid,        \
                                const unsigned *block, void **args,            \
                                char *error, size_t errorSize) {               \
    for (const auto &e : pf_shim_table)                                        \
      if (strcmp(e.name, name) == 0) {                                         \
        std::string why = ::pf_shim::launch(                                   \
            e.name, e.thunk, {grid[0], grid[1], grid[2]},                      \
            {block[0], block[1], block[2]}, args);                             \
        snprintf(error, errorSize, "%s", why.c_str());                         \
        return why.empty() ? 0 : 1;                                            \
      }                                                                        \
    snprintf(error, errorSize, "no kernel %s", name);                          \
    return 1;                                                                  \
  }
