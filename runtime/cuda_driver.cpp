// The CUDA driver API through dlopen; see cuda_driver.h.
#include "runtime/cuda_driver.h"
#include "runtime/vram_bill.h"

#include <cstring>
#include <dlfcn.h>

namespace pinfer {

namespace {
// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
constexpr int kAttrCcMajor = 75;
constexpr int kAttrCcMinor = 76;
} // namespace

bool cubinRunsOn(const char *smArch, int computeCapability) {
  if (!smArch || std::strncmp(smArch, "sm_", 3) != 0 || computeCapability < 10)
    return false;
  const char *p = smArch + 3;
  int version = 0, digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 4; ++p, ++digits)
    version = version * 10 + (*p - '0');
  // Two digits at least: the last is the minor version ("sm_120" is 12.0).
  if (digits < 2 || (p[0] != '\0' && p[1] != '\0'))
    return false;
  const int major = version / 10, minor = version % 10;
  const int devMajor = computeCapability / 10,
            devMinor = computeCapability % 10;
  switch (*p) {
  case '\0': // sm_XY
  case 'f':  // sm_XYf: the family of major X, from X.Y on
    return devMajor == major && devMinor >= minor;
  case 'a': // sm_XYa: this exact architecture
    return devMajor == major && devMinor == minor;
  default:
    return false;
  }
}

namespace {
// The context current on this thread, as far as CudaDriver set it.
thread_local void *tCurrent = nullptr;
// CU_STREAM_NON_BLOCKING: no implicit ordering with the legacy stream of
// other CUDA users in the process.
constexpr unsigned kStreamNonBlocking = 1;
// CU_EVENT_DISABLE_TIMING: the cheaper event, for ordering only.
constexpr unsigned kEventDisableTiming = 2;
} // namespace

CudaDriver::~CudaDriver() {
  if (ctx_) {
    std::string ignored;
    if (current(ignored)) {
      if (stream_)
        cuStreamSynchronize_(stream_);
      destroyGraphs();
      for (void *e : events_)
        cuEventDestroy_(e);
      for (DevPtr p : allocs_)
        cuMemFree_(p);
      for (void *p : hostAllocs_)
        cuMemFreeHost_(p);
      if (stream_)
        cuStreamDestroy_(stream_);
      if (module_)
        cuModuleUnload_(module_);
    }
    cuDevicePrimaryCtxRelease_(device_);
    tCurrent = nullptr;
  }
  if (lib_)
    dlclose(lib_);
}

bool CudaDriver::check(int rc, const char *call, std::string &error) const {
  if (rc == 0)
    return true;
  const char *msg = nullptr;
  if (cuGetErrorString_)
    cuGetErrorString_(rc, &msg);
  error = std::string("CUDA ") + call +
          " failed: " + (msg ? msg : "error " + std::to_string(rc));
  return false;
}

bool CudaDriver::checkSync(int rc, const char *call, std::string &error) {
  if (check(rc, call, error)) {
    pending_.clear();
    return true;
  }
  if (!pending_.empty()) {
    error += pending_.size() == 1 ? ", in the GPU work of "
                                  : ", in the GPU work since the last "
                                    "synchronisation: ";
    for (size_t i = 0; i < pending_.size(); ++i)
      error += (i ? ", " : "") + pending_[i];
    if (!syncDebug_ && pending_.size() > 1)
      error += " (--gpu-sync-debug names the one that failed)";
  }
  return false;
}

bool CudaDriver::current(std::string &error) {
  if (tCurrent == ctx_)
    return true;
  if (!check(cuCtxSetCurrent_(ctx_), "cuCtxSetCurrent", error))
    return false;
  tCurrent = ctx_;
  return true;
}

bool CudaDriver::open(std::string &error) {
  lib_ = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    error = "no CUDA driver (libcuda.so.1 could not be loaded)";
    return false;
  }
  struct Sym {
    void **slot;
    const char *name;
  } syms[] = {
      {(void **)&cuInit_, "cuInit"},
      {(void **)&cuDeviceGetCount_, "cuDeviceGetCount"},
      {(void **)&cuDeviceGet_, "cuDeviceGet"},
      {(void **)&cuDeviceGetName_, "cuDeviceGetName"},
      {(void **)&cuDeviceGetAttribute_, "cuDeviceGetAttribute"},
      {(void **)&cuDevicePrimaryCtxRetain_, "cuDevicePrimaryCtxRetain"},
      {(void **)&cuDevicePrimaryCtxRelease_, "cuDevicePrimaryCtxRelease_v2"},
      {(void **)&cuCtxSetCurrent_, "cuCtxSetCurrent"},
      {(void **)&cuMemGetInfo_, "cuMemGetInfo_v2"},
      {(void **)&cuModuleLoadData_, "cuModuleLoadData"},
      {(void **)&cuModuleUnload_, "cuModuleUnload"},
      {(void **)&cuModuleGetFunction_, "cuModuleGetFunction"},
      {(void **)&cuMemAlloc_, "cuMemAlloc_v2"},
      {(void **)&cuMemFree_, "cuMemFree_v2"},
      {(void **)&cuMemHostAlloc_, "cuMemHostAlloc"},
      {(void **)&cuMemFreeHost_, "cuMemFreeHost"},
      {(void **)&cuMemcpyHtoD_, "cuMemcpyHtoD_v2"},
      {(void **)&cuMemcpyDtoH_, "cuMemcpyDtoH_v2"},
      {(void **)&cuMemcpyHtoDAsync_, "cuMemcpyHtoDAsync_v2"},
      {(void **)&cuMemcpyDtoHAsync_, "cuMemcpyDtoHAsync_v2"},
      {(void **)&cuStreamCreate_, "cuStreamCreate"},
      {(void **)&cuStreamDestroy_, "cuStreamDestroy_v2"},
      {(void **)&cuStreamSynchronize_, "cuStreamSynchronize"},
      {(void **)&cuEventCreate_, "cuEventCreate"},
      {(void **)&cuEventDestroy_, "cuEventDestroy_v2"},
      {(void **)&cuEventRecord_, "cuEventRecord"},
      {(void **)&cuEventSynchronize_, "cuEventSynchronize"},
      {(void **)&cuLaunchKernel_, "cuLaunchKernel"},
      {(void **)&cuGetErrorString_, "cuGetErrorString"},
  };
  for (const Sym &s : syms) {
    *s.slot = dlsym(lib_, s.name);
    if (!*s.slot) {
      error = std::string("CUDA driver lacks ") + s.name;
      return false;
    }
  }
  // Graphs where the driver has them all (else graphsUsable() is false).
  const Sym graphSyms[] = {
      {(void **)&cuFuncGetParamInfo_, "cuFuncGetParamInfo"},
      {(void **)&cuStreamBeginCapture_, "cuStreamBeginCapture_v2"},
      {(void **)&cuStreamEndCapture_, "cuStreamEndCapture"},
      {(void **)&cuGraphInstantiateWithFlags_, "cuGraphInstantiateWithFlags"},
      {(void **)&cuGraphLaunch_, "cuGraphLaunch"},
      {(void **)&cuGraphDestroy_, "cuGraphDestroy"},
      {(void **)&cuGraphExecDestroy_, "cuGraphExecDestroy"},
  };
  for (const Sym &s : graphSyms)
    if (!(*s.slot = dlsym(lib_, s.name)))
      graphsOff_ = true;
  // Event times for --gpu-profile; CUDA 12.8 renamed the entry point.
  if (!(cuEventElapsedTime_ = reinterpret_cast<decltype(cuEventElapsedTime_)>(
            dlsym(lib_, "cuEventElapsedTime_v2"))))
    cuEventElapsedTime_ = reinterpret_cast<decltype(cuEventElapsedTime_)>(
        dlsym(lib_, "cuEventElapsedTime"));
  int count = 0;
  if (!check(cuInit_(0), "cuInit", error))
    return false;
  if (!check(cuDeviceGetCount_(&count), "cuDeviceGetCount", error))
    return false;
  if (count < 1) {
    error = "no CUDA device";
    return false;
  }
  if (!check(cuDeviceGet_(&device_, 0), "cuDeviceGet", error))
    return false;
  char name[256] = {};
  cuDeviceGetName_(name, sizeof name, device_);
  deviceName_ = name;
  int major = 0, minor = 0;
  cuDeviceGetAttribute_(&major, kAttrCcMajor, device_);
  cuDeviceGetAttribute_(&minor, kAttrCcMinor, device_);
  cc_ = major * 10 + minor;
  void *ctx = nullptr;
  if (!check(cuDevicePrimaryCtxRetain_(&ctx, device_),
             "cuDevicePrimaryCtxRetain", error))
    return false;
  ctx_ = ctx;
  tCurrent = nullptr;
  return current(error) &&
         check(cuStreamCreate_(&stream_, kStreamNonBlocking), "cuStreamCreate",
               error);
}

bool CudaDriver::memInfo(size_t &freeBytes, size_t &totalBytes,
                         std::string &error) {
  return current(error) &&
         check(cuMemGetInfo_(&freeBytes, &totalBytes), "cuMemGetInfo", error);
}

bool CudaDriver::loadModule(const void *image, std::string &error) {
  if (!current(error))
    return false;
  if (module_) {
    cuModuleUnload_(module_);
    module_ = nullptr;
  }
  aliases_.clear(); // the previous module's
  return check(cuModuleLoadData_(&module_, image), "cuModuleLoadData", error);
}

bool CudaDriver::loadModuleFor(const uint8_t *cubin, size_t cubinSize,
                               const char *smArch, const uint8_t *ptx,
                               std::string &error) {
  moduleKind_ = "";
  moduleNote_.clear();
  // An ELF object, as NVRTC writes CUBINs; anything else goes to the PTX.
  const bool haveCubin = cubin && cubinSize >= 4 && cubin[0] == 0x7f &&
                         cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F';
  if (haveCubin && cubinRunsOn(smArch, cc_)) {
    std::string why;
    if (loadModule(cubin, why)) {
      moduleKind_ = "cubin";
      return true;
    }
    moduleNote_ = why + " for the " + smArch + " CUBIN; loaded the PTX";
  }
  if (!ptx) {
    error = std::string("no PTX to load for ") + deviceName_ +
            " (compute capability " + std::to_string(cc_ / 10) + "." +
            std::to_string(cc_ % 10) + "), and the CUBIN is for " + smArch;
    return false;
  }
  if (!loadModule(ptx, error))
    return false;
  moduleKind_ = "ptx";
  return true;
}

void CudaDriver::setKernelAliases(const char *const *pairs, size_t n) {
  for (size_t i = 0; i < n; ++i)
    aliases_[pairs[2 * i]] = pairs[2 * i + 1];
}

void CudaDriver::setKernelAliases(
    const std::vector<std::pair<std::string, std::string>> &pairs) {
  for (const auto &[name, inModule] : pairs)
    aliases_[name] = inModule;
}

void *CudaDriver::function(const char *name, std::string &error) {
  void *fn = nullptr;
  const auto alias = aliases_.find(name);
  const char *inModule = alias == aliases_.end() ? name : alias->second.c_str();
  if (!current(error) || !check(cuModuleGetFunction_(&fn, module_, inModule),
                                "cuModuleGetFunction", error)) {
    error += std::string(" (kernel ") + name + ")";
    return nullptr;
  }
  return fn;
}

bool CudaDriver::reserve(size_t bytes, std::string &error) {
  if (arena_) {
    error = "device memory reserved twice";
    return false;
  }
  if (!current(error) ||
      !check(cuMemAlloc_(&arena_, bytes ? bytes : 4), "cuMemAlloc", error))
    return false;
  allocs_.push_back(arena_);
  arenaBytes_ = bytes;
  return true;
}

bool CudaDriver::alloc(DevPtr &out, size_t bytes, std::string &error) {
  ++buffers_;
  const size_t at =
      (arenaUsed_ + kDeviceAlign - 1) / kDeviceAlign * kDeviceAlign;
  if (arena_ && at + bytes <= arenaBytes_) {
    out = arena_ + at;
    arenaUsed_ = at + bytes + kDeviceGuard;
    if (!syncDebug_ || arenaUsed_ > arenaBytes_)
      return true;
    // The guard, which --gpu-sync-debug checks after each launch.
    static const std::vector<uint8_t> guard(kDeviceGuard, kDeviceGuardByte);
    guarded_.emplace(out, bytes);
    return upload(out + bytes, guard.data(), kDeviceGuard, error);
  }
  if (!current(error) ||
      !check(cuMemAlloc_(&out, bytes ? bytes : 4), "cuMemAlloc", error))
    return false;
  ++beyond_;
  allocs_.push_back(out);
  return true;
}

bool CudaDriver::allocHost(void *&out, size_t bytes, std::string &error) {
  if (!current(error) || !check(cuMemHostAlloc_(&out, bytes ? bytes : 4, 0),
                                "cuMemHostAlloc", error))
    return false;
  hostAllocs_.push_back(out);
  return true;
}

bool CudaDriver::upload(DevPtr dst, const void *src, size_t bytes,
                        std::string &error) {
  return current(error) &&
         checkSync(cuMemcpyHtoD_(dst, src, bytes), "cuMemcpyHtoD", error);
}

bool CudaDriver::download(void *dst, DevPtr src, size_t bytes,
                          std::string &error) {
  // The legacy stream's copy does not wait for a non-blocking stream.
  return synchronize(error) &&
         checkSync(cuMemcpyDtoH_(dst, src, bytes), "cuMemcpyDtoH", error);
}

bool CudaDriver::uploadAsync(DevPtr dst, const void *src, size_t bytes,
                             std::string &error) {
  if (graphSlot_ >= 0)
    return holdCopy(HeldOp::Upload, dst, const_cast<void *>(src), bytes);
  return current(error) &&
         check(cuMemcpyHtoDAsync_(dst, src, bytes, stream_),
               "cuMemcpyHtoDAsync", error);
}

bool CudaDriver::downloadAsync(void *dst, DevPtr src, size_t bytes,
                               std::string &error) {
  if (graphSlot_ >= 0)
    return holdCopy(HeldOp::Download, src, dst, bytes);
  return current(error) &&
         check(cuMemcpyDtoHAsync_(dst, src, bytes, stream_),
               "cuMemcpyDtoHAsync", error);
}

bool CudaDriver::launch(void *fn, unsigned grid, unsigned block, void **args,
                        std::string &error, const char *name, int layer,
                        uint64_t bytes) {
  if (!current(error))
    return false;
  std::string what = *name ? std::string("kernel ") + name : "a kernel";
  if (layer >= 0)
    what += " (layer " + std::to_string(layer) + ")";
  if (graphSlot_ >= 0)
    return hold(fn, grid, block, args, what, error);
  if (profile_)
    return launchTimed(fn, grid, block, args, what, name, bytes, error);
  return launchNow(fn, grid, block, args, what, error);
}

bool CudaDriver::launchCall(void *fn, unsigned grid, unsigned block,
                            void **args, const std::string &what,
                            std::string &error) {
  if (check(cuLaunchKernel_(fn, grid, 1, 1, block, 1, 1, 0, stream_, args,
                            nullptr),
            "cuLaunchKernel", error))
    return true;
  error += ", launching " + what;
  return false;
}

bool CudaDriver::launchNow(void *fn, unsigned grid, unsigned block, void **args,
                           const std::string &what, std::string &error) {
  if (!launchCall(fn, grid, block, args, what, error))
    return false;
  pending_.push_back(what);
  return afterLaunch(fn, args, what, error);
}

bool CudaDriver::afterLaunch(void *fn, void **args, const std::string &what,
                             std::string &error) {
  return !syncDebug_ ||
         (synchronize(error) && checkGuards(fn, args, what, error));
}

const std::vector<size_t> &CudaDriver::paramSizes(void *fn) {
  auto it = paramSizes_.find(fn);
  if (it == paramSizes_.end()) {
    // The driver says where each parameter is, and where none is left.
    std::vector<size_t> sizes;
    for (size_t i = 0; cuFuncGetParamInfo_; ++i) {
      size_t offset = 0, size = 0;
      if (cuFuncGetParamInfo_(fn, i, &offset, &size) != 0)
        break;
      sizes.push_back(size);
    }
    it = paramSizes_.emplace(fn, std::move(sizes)).first;
  }
  return it->second;
}

bool CudaDriver::checkGuards(void *fn, void **args, const std::string &what,
                             std::string &error) {
  if (guarded_.empty())
    return true;
  const std::vector<size_t> &sizes = paramSizes(fn);
  if (sizes.empty() || !args) {
    for (auto b = guarded_.cbegin(); b != guarded_.cend(); ++b)
      if (!checkGuard(b, what, error))
        return false;
    return true;
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] != sizeof(DevPtr))
      continue;
    DevPtr v;
    std::memcpy(&v, args[i], sizeof v);
    // The buffer whose span (with its guard) holds v, and the one before.
    auto b = guarded_.upper_bound(v);
    if (b == guarded_.cbegin())
      continue;
    --b;
    if (v >= b->first + b->second + kDeviceGuard)
      continue;
    if (!checkGuard(b, what, error) ||
        (b != guarded_.cbegin() && !checkGuard(std::prev(b), what, error)))
      return false;
  }
  return true;
}

bool CudaDriver::checkGuard(std::map<DevPtr, size_t>::const_iterator buffer,
                            const std::string &what, std::string &error) {
  uint8_t got[kDeviceGuard];
  if (!checkSync(
          cuMemcpyDtoH_(got, buffer->first + buffer->second, kDeviceGuard),
          "cuMemcpyDtoH", error))
    return false;
  ++guardChecks_;
  for (size_t i = 0; i < kDeviceGuard; ++i)
    if (got[i] != kDeviceGuardByte) {
      error = what + " wrote outside its device buffers: byte " +
              std::to_string(i) + " of the guard after the " +
              std::to_string(buffer->second) + "-byte buffer at offset " +
              std::to_string(buffer->first - arena_) +
              " of the reservation changed";
      return false;
    }
  return true;
}

bool CudaDriver::createEvent(void *&event, std::string &error) {
  if (!current(error) ||
      !check(cuEventCreate_(&event, kEventDisableTiming), "cuEventCreate",
             error))
    return false;
  events_.push_back(event);
  return true;
}

namespace {
// Held work runs at endGraph: a wait before then would wait for nothing.
bool holding(int slot, const char *call, std::string &error) {
  if (slot < 0)
    return false;
  error = std::string("internal error: ") + call +
          " between beginGraph and endGraph";
  return true;
}
} // namespace

bool CudaDriver::record(void *event, std::string &error) {
  if (holding(graphSlot_, "cuEventRecord", error))
    return false;
  return current(error) &&
         check(cuEventRecord_(event, stream_), "cuEventRecord", error);
}

bool CudaDriver::wait(void *event, std::string &error) {
  if (holding(graphSlot_, "cuEventSynchronize", error))
    return false;
  return current(error) &&
         checkSync(cuEventSynchronize_(event), "cuEventSynchronize", error) &&
         (timed_.empty() || readTimes(false, error));
}

bool CudaDriver::synchronize(std::string &error) {
  if (holding(graphSlot_, "cuStreamSynchronize", error))
    return false;
  return current(error) &&
         checkSync(cuStreamSynchronize_(stream_), "cuStreamSynchronize",
                   error) &&
         (timed_.empty() || readTimes(true, error));
}

} // namespace pinfer
