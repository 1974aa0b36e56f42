// Test only: a stand-in for libcuda.so.1, so that an executable's GPU path
// runs end to end in ctest on a machine without a GPU. Built as
// build/test/cuda_host/standin/libcuda.so.1 and found only through the
// LD_LIBRARY_PATH that ctest sets for the tests that ask for it; never
// installed.
//
// Device memory is host memory. A module's kernels are the emitted CUDA
// source compiled as host C++ (cuda_host_shim.h, build-host-kernels.sh):
// the shared object named by PINFER_CUDA_STANDIN_KERNELS; a kernel is
// found only when the loaded PTX or CUBIN image names it too. Work enqueued
// on streams (launches, asynchronous copies, events) runs only when the host
// synchronises with it, so a host that reads a result it has not waited for
// sees stale data, as it may on a GPU; an event's time is when that work
// reached it here. Every call that needs a context fails
// on a thread where none is current. Stream capture and graphs: the work
// enqueued during a capture becomes the graph's, launched as a whole.
//
// Environment:
//   PINFER_CUDA_STANDIN_KERNELS  the kernels' shared object
//   PINFER_CUDA_STANDIN_VRAM_MIB total memory (default 24564, an RTX 4090)
//   PINFER_CUDA_STANDIN_CC       compute capability (default 89)
//   PINFER_CUDA_STANDIN_NAME     the device's name (default: says what it is)
//   PINFER_CUDA_STANDIN_FAIL     KIND=N: the Nth call of a kind fails
//                                (alloc, copy, launch, load, graph; launch
//                                fails as a kernel fault seen at the next
//                                sync, graph at instantiation; overrun:
//                                the launch runs, then writes one byte
//                                into the guard after the buffer of its
//                                first pointer argument, as a kernel
//                                running past its buffer would)
//   PINFER_CUDA_STANDIN_REPORT   file that gets counts at exit: launches,
//                                leaked allocations, modules left loaded,
//                                asynchronous copies from pageable memory,
//                                graph launches, graphs left instantiated,
//                                bytes copied device to host, the peak of
//                                device memory held (each allocation in
//                                whole 2 MiB pages)
#include "runtime/vram_bill.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

// CUresult values used here.
constexpr int kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2,
              kNotInitialized = 3, kInvalidContext = 201, kInvalidImage = 200,
              kInvalidHandle = 400, kNotFound = 500, kNotReady = 600,
              kIllegalAddress = 700, kLaunchFailed = 719,
              kCaptureUnsupported = 900, kCaptureInvalidated = 901;

struct Module;
struct Function {
  Module *module;
  std::string name;
  std::vector<unsigned> sizes;
};
struct Module {
  void *so = nullptr;
  std::string image; // PTX text or CUBIN bytes
  int (*params)(const char *, unsigned *) = nullptr;
  int (*launch)(const char *, const unsigned *, const unsigned *, void **,
                char *, size_t) = nullptr;
  std::vector<std::unique_ptr<Function>> functions; // valid until unloaded
  ~Module() {
    if (so)
      dlclose(so);
  }
};
struct Event {
  uint64_t recordedAt = 0; // queue position; 0: never recorded
  bool timing = true;      // not created with CU_EVENT_DISABLE_TIMING
  // When the queue reached the last record; shared with the queued
  // record, which may run after the event is destroyed.
  std::shared_ptr<double> reachedMs = std::make_shared<double>(0);
};

// Milliseconds on a steady clock: an event's time is when the work queued
// before it had run here.
double nowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Op {
  uint64_t seq;
  std::function<int()> run;
};
// A captured graph and an instantiated one alike: the work, in order.
struct Graph {
  std::vector<std::function<int()>> work;
};

struct State {
  std::mutex mu;
  bool initialised = false;
  int ctxRetains = 0;
  std::map<uintptr_t, size_t> allocs; // device memory
  std::map<uintptr_t, size_t> pinned; // page-locked host memory
  size_t used = 0, total = 0;
  size_t peakUsed = 0;   // the most device memory held at once
  std::vector<Op> queue; // enqueued work, in issue order
  uint64_t nextSeq = 1, doneSeq = 0;
  int sticky = 0; // a kernel fault: every later call fails with it
  std::string stickyWhat;
  std::map<std::string, int> calls, failAt;
  long launches = 0, pageableAsync = 0, modulesLoaded = 0, modulesUnloaded = 0;
  long hostWaits = 0; // event, stream and context synchronisations
  long bytesDown = 0; // copied device to host, as the copies ran
  Graph *capturing = nullptr; // work goes here while a capture is open
  long graphLaunches = 0, graphExecs = 0;
  std::vector<std::unique_ptr<Module>> modules; // loaded, not yet unloaded
  std::string lastError;
};

// Destroyed when the library is unloaded, after writeReport (registered
// later).
State &st() {
  static State s;
  return s;
}

thread_local void *tlsCtx = nullptr;
char ctxToken; // the primary context's handle

bool failNow(State &s, const char *kind) {
  int n = ++s.calls[kind];
  auto it = s.failAt.find(kind);
  return it != s.failAt.end() && it->second == n;
}

// The end of the last device allocation that starts at or before `p` (p
// lies in it when below the end); 0 where none does.
uintptr_t allocationEnd(State &s, uintptr_t p) {
  auto it = s.allocs.upper_bound(p);
  if (it == s.allocs.begin())
    return 0;
  --it;
  return it->first + it->second;
}

// The "overrun" fault: the first pointer argument that points into device
// memory has the guard after its buffer (the first kDeviceGuard bytes of
// kDeviceGuardByte from there, which --gpu-sync-debug fills) changed in
// its first byte. Nothing where no guard follows (no --gpu-sync-debug).
void overrunFirstBuffer(State &s,
                        const std::vector<std::vector<char>> &values) {
  for (const std::vector<char> &v : values) {
    uintptr_t p = 0;
    if (v.size() != sizeof p)
      continue;
    std::memcpy(&p, v.data(), sizeof p);
    const uintptr_t end = allocationEnd(s, p);
    if (p >= end)
      continue;
    auto *b = reinterpret_cast<uint8_t *>(p);
    size_t run = 0;
    for (uintptr_t q = p; q < end; ++q) {
      run = b[q - p] == pinfer::kDeviceGuardByte ? run + 1 : 0;
      if (run == pinfer::kDeviceGuard) {
        b[q - p - (run - 1)] ^= 0xff;
        return;
      }
    }
    return;
  }
}

// Runs queued work up to and including `seq`; the first fault is sticky.
int drain(State &s, uint64_t seq) {
  size_t i = 0;
  for (; i < s.queue.size() && s.queue[i].seq <= seq; ++i) {
    if (s.sticky)
      break;
    int rc = s.queue[i].run();
    if (rc != kSuccess)
      s.sticky = rc;
    s.doneSeq = s.queue[i].seq;
  }
  s.queue.erase(s.queue.begin(), s.queue.begin() + long(i));
  if (s.sticky)
    s.queue.clear();
  return s.sticky;
}
int drainAll(State &s) { return drain(s, UINT64_MAX); }

uint64_t enqueue(State &s, std::function<int()> fn) {
  if (s.capturing) {
    s.capturing->work.push_back(std::move(fn));
    return 0;
  }
  uint64_t seq = s.nextSeq++;
  s.queue.push_back(Op{seq, std::move(fn)});
  return seq;
}

// Common entry checks: initialised, a current context, no sticky fault.
int ready(State &s) {
  if (!s.initialised)
    return kNotInitialized;
  if (!tlsCtx)
    return kInvalidContext;
  return s.sticky;
}

bool inDevice(State &s, uintptr_t p, size_t bytes) {
  const uintptr_t end = allocationEnd(s, p);
  return end && p + bytes <= end;
}

void writeReport() {
  const char *path = getenv("PINFER_CUDA_STANDIN_REPORT");
  if (!path)
    return;
  State &s = st();
  FILE *f = fopen(path, "w");
  if (!f)
    return;
  fprintf(f,
          "launches %ld\nleaked_allocations %zu\nleaked_pinned %zu\n"
          "modules_loaded %ld\nmodules_unloaded %ld\ncontext_retains %d\n"
          "pageable_async_copies %ld\nhost_waits %ld\ngraph_launches %ld\n"
          "leaked_graph_execs %ld\nbytes_down %ld\npeak_device_bytes %zu\n",
          s.launches, s.allocs.size(), s.pinned.size(), s.modulesLoaded,
          s.modulesUnloaded, s.ctxRetains, s.pageableAsync, s.hostWaits,
          s.graphLaunches, s.graphExecs, s.bytesDown, s.peakUsed);
  fclose(f);
}

// What an allocation takes from the device's memory: whole 2 MiB pages,
// as the driver's large pages (small allocations may share a page on a
// GPU; counting each whole bounds what a program of many buffers takes).
size_t held(size_t bytes) {
  const size_t page = size_t(2) << 20;
  return (std::max<size_t>(bytes, 1) + page - 1) / page * page;
}

} // namespace

extern "C" {

int cuInit(unsigned) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.initialised)
    return kSuccess;
  s.initialised = true;
  const char *vram = getenv("PINFER_CUDA_STANDIN_VRAM_MIB");
  s.total = size_t(vram ? atol(vram) : 24564) << 20;
  if (const char *fail = getenv("PINFER_CUDA_STANDIN_FAIL")) {
    std::string spec = fail;
    size_t eq = spec.find('=');
    if (eq != std::string::npos)
      s.failAt[spec.substr(0, eq)] = atoi(spec.c_str() + eq + 1);
  }
  atexit(writeReport);
  return kSuccess;
}

// NVRTC asks the driver, when one is loaded, for its private tables: the
// stand-in has none.
int cuGetExportTable(const void **table, const void *) {
  *table = nullptr;
  return 801; // CUDA_ERROR_NOT_SUPPORTED
}

int cuDeviceGetCount(int *n) {
  *n = st().initialised ? 1 : 0;
  return st().initialised ? kSuccess : kNotInitialized;
}
int cuDeviceGet(int *dev, int ordinal) {
  if (ordinal != 0)
    return kInvalidValue;
  *dev = 0;
  return kSuccess;
}
int cuDeviceGetName(char *name, int len, int) {
  const char *given = getenv("PINFER_CUDA_STANDIN_NAME");
  snprintf(name, size_t(len), "%s",
           given ? given : "pinfer host stand-in (test only)");
  return kSuccess;
}
int cuDeviceGetAttribute(int *v, int attr, int) {
  const char *cc = getenv("PINFER_CUDA_STANDIN_CC");
  int c = cc ? atoi(cc) : 89;
  switch (attr) {
  case 75: // compute capability major
    *v = c / 10;
    return kSuccess;
  case 76:
    *v = c % 10;
    return kSuccess;
  case 16: // multiprocessors
    *v = 8;
    return kSuccess;
  default:
    *v = 0;
    return kSuccess;
  }
}
int cuDevicePrimaryCtxRetain(void **ctx, int) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  ++s.ctxRetains;
  *ctx = &ctxToken;
  return kSuccess;
}
int cuDevicePrimaryCtxRelease_v2(int) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  --s.ctxRetains;
  return kSuccess;
}
int cuCtxSetCurrent(void *ctx) {
  if (ctx && ctx != &ctxToken)
    return kInvalidContext;
  tlsCtx = ctx;
  return kSuccess;
}
int cuCtxGetCurrent(void **ctx) {
  *ctx = tlsCtx;
  return kSuccess;
}
int cuCtxSynchronize() {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.capturing)
    return kCaptureUnsupported;
  s.hostWaits += 1;
  if (int rc = ready(s))
    return rc;
  return drainAll(s);
}
int cuMemGetInfo_v2(size_t *freeB, size_t *totalB) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  *freeB = s.total - s.used;
  *totalB = s.total;
  return kSuccess;
}

int cuModuleLoadData(void **mod, const void *image) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (failNow(s, "load"))
    return kInvalidImage;
  const char *path = getenv("PINFER_CUDA_STANDIN_KERNELS");
  if (!path || !image)
    return kInvalidImage;
  auto m = std::make_unique<Module>();
  const unsigned char *b = static_cast<const unsigned char *>(image);
  if (b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F') {
    // A 64-bit ELF ends with its section headers.
    uint64_t shoff;
    uint16_t shentsize, shnum;
    memcpy(&shoff, b + 0x28, 8);
    memcpy(&shentsize, b + 0x3a, 2);
    memcpy(&shnum, b + 0x3c, 2);
    m->image.assign(reinterpret_cast<const char *>(b),
                    size_t(shoff + uint64_t(shentsize) * shnum));
  } else {
    m->image = static_cast<const char *>(image);
  }
  m->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!m->so) {
    // The test that built the kernels needs to know why they do not load.
    std::fprintf(stderr, "cuda stand-in: %s\n", dlerror());
    return kInvalidImage;
  }
  m->params = reinterpret_cast<int (*)(const char *, unsigned *)>(
      dlsym(m->so, "pf_shim_params"));
  m->launch =
      reinterpret_cast<int (*)(const char *, const unsigned *,
                               const unsigned *, void **, char *, size_t)>(
          dlsym(m->so, "pf_shim_launch"));
  if (!m->params || !m->launch)
    return kInvalidImage;
  ++s.modulesLoaded;
  *mod = m.get();
  s.modules.push_back(std::move(m));
  return kSuccess;
}
int cuModuleUnload(void *mod) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (!mod)
    return kInvalidHandle;
  // Work still queued may use the module's kernels.
  drainAll(s);
  for (auto it = s.modules.begin(); it != s.modules.end(); ++it)
    if (it->get() == mod) {
      s.modules.erase(it);
      ++s.modulesUnloaded;
      return kSuccess;
    }
  return kInvalidHandle;
}
int cuModuleGetFunction(void **fn, void *mod, const char *name) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  Module *m = static_cast<Module *>(mod);
  if (!m)
    return kInvalidHandle;
  // The image must name the kernel as well as the host build: the two come
  // from the same emitted source.
  const bool ptx = m->image.compare(0, 4, "\x7f"
                                          "ELF") != 0;
  const std::string entry =
      ptx ? ".entry " + std::string(name) + "(" : std::string(name);
  unsigned sizes[32];
  int n = m->params(name, sizes);
  if (m->image.find(entry) == std::string::npos || n < 0)
    return kNotFound;
  m->functions.push_back(std::make_unique<Function>(
      Function{m, name, std::vector<unsigned>(sizes, sizes + n)}));
  *fn = m->functions.back().get();
  return kSuccess;
}

int cuMemAlloc_v2(unsigned long long *p, size_t bytes) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (failNow(s, "alloc") || held(bytes) > s.total - s.used)
    return kOutOfMemory;
  void *m = aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m)
    return kOutOfMemory;
  // Fresh device memory holds garbage, not zeros.
  memset(m, 0xa5, bytes);
  s.allocs[uintptr_t(m)] = bytes;
  s.used += held(bytes);
  s.peakUsed = std::max(s.peakUsed, s.used);
  *p = uintptr_t(m);
  return kSuccess;
}
int cuMemFree_v2(unsigned long long p) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  drainAll(s);
  auto it = s.allocs.find(uintptr_t(p));
  if (it == s.allocs.end())
    return kInvalidValue;
  s.used -= held(it->second);
  s.allocs.erase(it);
  free(reinterpret_cast<void *>(p));
  return kSuccess;
}
int cuMemHostAlloc(void **p, size_t bytes, unsigned) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (failNow(s, "alloc"))
    return kOutOfMemory;
  *p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (!*p)
    return kOutOfMemory;
  s.pinned[uintptr_t(*p)] = bytes;
  return kSuccess;
}
int cuMemFreeHost(void *p) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  drainAll(s);
  if (!s.pinned.erase(uintptr_t(p)))
    return kInvalidValue;
  free(p);
  return kSuccess;
}

// Copies: synchronous ones wait for all queued work first (the legacy
// default stream's semantics).
static int copyCheck(State &s, uintptr_t dev, size_t bytes) {
  if (failNow(s, "copy"))
    return kIllegalAddress;
  return inDevice(s, dev, bytes) ? kSuccess : kInvalidValue;
}
static bool isPinned(State &s, const void *p, size_t bytes) {
  auto it = s.pinned.upper_bound(uintptr_t(p));
  if (it == s.pinned.begin())
    return false;
  --it;
  return uintptr_t(p) + bytes <= it->first + it->second;
}
int cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t bytes) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.capturing)
    return kCaptureUnsupported;
  if (int rc = ready(s))
    return rc;
  if (int rc = drainAll(s))
    return rc;
  if (int rc = copyCheck(s, uintptr_t(dst), bytes))
    return rc;
  memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return kSuccess;
}
int cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.capturing)
    return kCaptureUnsupported;
  if (int rc = ready(s))
    return rc;
  if (int rc = drainAll(s))
    return rc;
  if (int rc = copyCheck(s, uintptr_t(src), bytes))
    return rc;
  memcpy(dst, reinterpret_cast<void *>(src), bytes);
  s.bytesDown += long(bytes);
  return kSuccess;
}
int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src,
                         size_t bytes, void *) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (int rc = copyCheck(s, uintptr_t(dst), bytes))
    return rc;
  if (!isPinned(s, src, bytes))
    ++s.pageableAsync;
  enqueue(s, [=] {
    memcpy(reinterpret_cast<void *>(dst), src, bytes);
    return kSuccess;
  });
  return kSuccess;
}
int cuMemcpyDtoHAsync_v2(void *dst, unsigned long long src, size_t bytes,
                         void *) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (int rc = copyCheck(s, uintptr_t(src), bytes))
    return rc;
  if (!isPinned(s, dst, bytes))
    ++s.pageableAsync;
  enqueue(s, [=] {
    memcpy(dst, reinterpret_cast<void *>(src), bytes);
    st().bytesDown += long(bytes);
    return kSuccess;
  });
  return kSuccess;
}

// Streams share one queue in issue order: a valid order for any program
// that synchronises correctly.
int cuStreamCreate(void **stream, unsigned) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  *stream = new char;
  return kSuccess;
}
int cuStreamDestroy_v2(void *stream) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  drainAll(s);
  delete static_cast<char *>(stream);
  return kSuccess;
}
int cuStreamSynchronize(void *) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.capturing)
    return kCaptureUnsupported;
  s.hostWaits += 1;
  if (int rc = ready(s))
    return rc;
  return drainAll(s);
}
int cuEventCreate(void **event, unsigned flags) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  Event *e = new Event;
  e->timing = (flags & 2u) == 0; // CU_EVENT_DISABLE_TIMING
  *event = e;
  return kSuccess;
}
int cuEventDestroy_v2(void *event) {
  delete static_cast<Event *>(event);
  return kSuccess;
}
int cuEventRecord(void *event, void *) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  Event *e = static_cast<Event *>(event);
  e->recordedAt = enqueue(s, [at = e->reachedMs] {
    *at = nowMs();
    return kSuccess;
  });
  return kSuccess;
}
int cuEventSynchronize(void *event) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.capturing)
    return kCaptureUnsupported;
  s.hostWaits += 1;
  if (int rc = ready(s))
    return rc;
  return drain(s, static_cast<Event *>(event)->recordedAt);
}
// As the driver's: an event created without timing, or never recorded, is
// an invalid handle; one the queue has not reached is not ready (never
// waited for here).
int cuEventElapsedTime_v2(float *ms, void *start, void *end) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  const Event *a = static_cast<const Event *>(start),
              *b = static_cast<const Event *>(end);
  if (!ms || !a || !b || !a->timing || !b->timing || !a->recordedAt ||
      !b->recordedAt)
    return kInvalidHandle;
  if (s.doneSeq < a->recordedAt || s.doneSeq < b->recordedAt)
    return kNotReady;
  *ms = float(*b->reachedMs - *a->reachedMs);
  return kSuccess;
}
int cuEventElapsedTime(float *ms, void *start, void *end) {
  return cuEventElapsedTime_v2(ms, start, end);
}
int cuStreamWaitEvent(void *, void *, unsigned) {
  // One queue in issue order: the event's work runs before what follows.
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  return ready(s);
}

int cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz,
                   unsigned bx, unsigned by, unsigned bz, unsigned, void *,
                   void **params, void **) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  Function *f = static_cast<Function *>(fn);
  if (!f || !params)
    return kInvalidValue;
  const unsigned block = bx * by * bz;
  if (block == 0 || block > 1024 || gx == 0 || gy == 0 || gz == 0)
    return kInvalidValue;
  ++s.launches;
  const bool fault = failNow(s, "launch");
  const bool overrun = failNow(s, "overrun");
  // The parameters' values, copied now as the driver does.
  std::vector<std::vector<char>> values;
  for (size_t i = 0; i < f->sizes.size(); ++i)
    values.emplace_back(static_cast<char *>(params[i]),
                        static_cast<char *>(params[i]) + f->sizes[i]);
  enqueue(s, [f, fault, overrun, values, gx, gy, gz, bx, by, bz]() mutable {
    State &s = st();
    if (fault) {
      s.stickyWhat = "injected fault in " + f->name;
      return kLaunchFailed;
    }
    std::vector<void *> args;
    for (auto &v : values)
      args.push_back(v.data());
    unsigned grid[3] = {gx, gy, gz}, blk[3] = {bx, by, bz};
    char error[512] = {};
    if (f->module->launch(f->name.c_str(), grid, blk, args.data(), error,
                          sizeof error) != 0) {
      fprintf(stderr, "stand-in: %s\n", error);
      s.stickyWhat = error;
      return kIllegalAddress;
    }
    if (overrun)
      overrunFirstBuffer(s, values);
    return kSuccess;
  });
  return kSuccess;
}

// The parameters of a kernel as cuFuncGetParamInfo reports them: each at
// the next multiple of its size.
int cuFuncGetParamInfo(void *fn, size_t index, size_t *offset, size_t *size) {
  const Function *f = static_cast<const Function *>(fn);
  if (!f || index >= f->sizes.size())
    return kInvalidValue;
  size_t at = 0;
  for (size_t i = 0; i <= index; ++i) {
    at = (at + f->sizes[i] - 1) / f->sizes[i] * f->sizes[i];
    if (i < index)
      at += f->sizes[i];
  }
  *offset = at;
  *size = f->sizes[index];
  return kSuccess;
}

// Graphs: a capture takes the work enqueued until it ends (every stream:
// they share one queue); a launch enqueues the graph's work in order.
// Waiting for anything while a capture is open is refused, as the driver
// refuses synchronising a capturing stream.
int cuStreamBeginCapture_v2(void *, int) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (s.capturing)
    return kCaptureUnsupported;
  s.capturing = new Graph;
  return kSuccess;
}
int cuStreamEndCapture(void *, void **graph) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (!s.capturing)
    return kCaptureInvalidated;
  *graph = s.capturing;
  s.capturing = nullptr;
  return kSuccess;
}
int cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (!graph)
    return kInvalidValue;
  if (failNow(s, "graph"))
    return kOutOfMemory;
  *exec = new Graph(*static_cast<Graph *>(graph));
  ++s.graphExecs;
  return kSuccess;
}
int cuGraphLaunch(void *exec, void *) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  if (int rc = ready(s))
    return rc;
  if (!exec || s.capturing)
    return kInvalidValue;
  ++s.graphLaunches;
  for (const auto &w : static_cast<Graph *>(exec)->work)
    enqueue(s, w);
  return kSuccess;
}
int cuGraphDestroy(void *graph) {
  delete static_cast<Graph *>(graph);
  return kSuccess;
}
int cuGraphExecDestroy(void *exec) {
  State &s = st();
  std::lock_guard<std::mutex> g(s.mu);
  delete static_cast<Graph *>(exec);
  --s.graphExecs;
  return kSuccess;
}

int cuGetErrorString(int rc, const char **msg) {
  switch (rc) {
  case kSuccess:
    *msg = "no error";
    return kSuccess;
  case kInvalidValue:
    *msg = "invalid argument";
    return kSuccess;
  case kOutOfMemory:
    *msg = "out of memory";
    return kSuccess;
  case kNotInitialized:
    *msg = "initialization error";
    return kSuccess;
  case kInvalidImage:
    *msg = "device kernel image is invalid";
    return kSuccess;
  case kInvalidContext:
    *msg = "invalid device context";
    return kSuccess;
  case kInvalidHandle:
    *msg = "invalid resource handle";
    return kSuccess;
  case kNotFound:
    *msg = "named symbol not found";
    return kSuccess;
  case kNotReady:
    *msg = "device not ready";
    return kSuccess;
  case kIllegalAddress:
    *msg = "an illegal memory access was encountered";
    return kSuccess;
  case kLaunchFailed:
    *msg = "unspecified launch failure";
    return kSuccess;
  case kCaptureUnsupported:
    *msg = "operation not permitted when stream is capturing";
    return kSuccess;
  case kCaptureInvalidated:
    *msg = "operation failed due to a previous error during capture";
    return kSuccess;
  default:
    *msg = nullptr;
    return kInvalidValue;
  }
}

} // extern "C"
