// The CUDA driver API, loaded at run time from libcuda.so.1 with dlopen so
// that executables start on machines without a GPU or driver (linking
// -lcuda would make them die at start-up there). Only the handful of calls
// the executor needs; every failure becomes one error line naming the call
// and the driver's message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pinfer {

// True when a CUBIN built for `smArch` ("sm_89", "sm_90a", "sm_100f") runs
// on a device of compute capability `computeCapability` (major * 10 +
// minor, as CudaDriver reports it). CUDA's binary compatibility: a CUBIN
// for X.y runs on X.z with z >= y, never across major versions; an
// architecture-specific one (suffix "a") only on X.y itself; a
// family-specific one (suffix "f") on the later members of family X. False
// for anything else, so that the caller falls back to the PTX.
bool cubinRunsOn(const char *smArch, int computeCapability);

class CudaDriver {
public:
  using DevPtr = unsigned long long; // CUdeviceptr

  // Waits for the stream, then frees what it allocated (device and pinned
  // memory, events, the stream), unloads the module and releases the
  // context.
  ~CudaDriver();
  // Loads the driver, initialises it, makes device 0's primary context
  // current (shared with any other CUDA user in the process) and creates
  // the stream all work goes to. False with the reason in `error` ("no
  // libcuda.so.1", "no CUDA device").
  bool open(std::string &error);
  bool isOpen() const { return ctx_ != nullptr; }

  std::string deviceName() const { return deviceName_; }
  // Compute capability, e.g. 89.
  int computeCapability() const { return cc_; }
  bool memInfo(size_t &freeBytes, size_t &totalBytes, std::string &error);
  // Synchronise after every launch, so that a fault names its kernel
  // (executables' --gpu-sync-debug); and fill the guard after each buffer
  // alloc() carves from the reservation, checked after each launch
  // (checkGuards). Set before the buffers are carved.
  void setSyncDebug(bool on) { syncDebug_ = on; }
  // Guards checked so far (--gpu-sync-debug), for the run's report.
  size_t guardChecks() const { return guardChecks_; }
  // Kernel times (executables' --gpu-profile): each launch goes alone, not
  // in a graph, between two timing events, which are read after later
  // synchronisations. False where the driver cannot time events.
  bool setProfile(bool on, std::string &error);
  bool profiling() const { return profile_; }
  // What the following launches belong to ("prompt", "decode"), for the
  // table.
  void setProfilePhase(const char *phase) { profPhase_ = phase; }
  struct KernelTime {
    std::string phase, kernel; // kernel: its name, layers together
    long launches = 0;
    double ms = 0;      // on the GPU, start to end of each launch
    uint64_t bytes = 0; // weight bytes the launches read, where named
  };
  // Waits for the stream, then the times so far by phase and kernel, the
  // longest first.
  bool kernelTimes(std::vector<KernelTime> &out, std::string &error);

  // Loads a PTX (NUL-terminated) or CUBIN image.
  bool loadModule(const void *image, std::string &error);
  // Loads a program's GPU code: `cubin` (built for `smArch`, `cubinSize`
  // bytes; may be null) when cubinRunsOn says this device runs it, else the
  // PTX `ptx`, which the driver compiles for the device; also the PTX when
  // the driver refuses the CUBIN, and then moduleNote() says why.
  bool loadModuleFor(const uint8_t *cubin, size_t cubinSize, const char *smArch,
                     const uint8_t *ptx, std::string &error);
  // What loadModuleFor loaded: "cubin", "ptx", or "" before it succeeded.
  const char *moduleKind() const { return moduleKind_; }
  // Why a CUBIN that should have run was not loaded; else "".
  const std::string &moduleNote() const { return moduleNote_; }
  // Names the module holds under another kernel's name: `n` pairs {name,
  // the module's name} (Program::kernelAliases).
  void setKernelAliases(const char *const *pairs, size_t n);
  void setKernelAliases(
      const std::vector<std::pair<std::string, std::string>> &pairs);
  // A kernel of the loaded module (through the aliases); null with
  // `error` when absent.
  void *function(const char *name, std::string &error);

  // Reserves `bytes` of device memory as one allocation that the
  // following alloc() calls are carved from (runtime/vram_bill.h: each
  // buffer kDeviceAlign-aligned, a kDeviceGuard gap after it). Once.
  bool reserve(size_t bytes, std::string &error);
  // A buffer from the reservation; past its end (or without one) its own
  // allocation, which the bill did not count.
  bool alloc(DevPtr &out, size_t bytes, std::string &error);
  // Buffers alloc() has given, and those that did not fit the reservation.
  size_t buffers() const { return buffers_; }
  size_t buffersBeyondReserve() const { return beyond_; }
  // Page-locked host memory, which asynchronous copies need to overlap.
  bool allocHost(void *&out, size_t bytes, std::string &error);
  // Synchronous copies (weights at load time, tests).
  bool upload(DevPtr dst, const void *src, size_t bytes, std::string &error);
  // Waits for all earlier work, then copies.
  bool download(void *dst, DevPtr src, size_t bytes, std::string &error);
  // Enqueued on the stream; the host buffer must stay as it is until an
  // event recorded after the copy has completed.
  bool uploadAsync(DevPtr dst, const void *src, size_t bytes,
                   std::string &error);
  bool downloadAsync(void *dst, DevPtr src, size_t bytes, std::string &error);
  // Enqueues kernel `fn` on the stream; args as for cuLaunchKernel. `name`
  // and `layer` name the work in the errors of later synchronisations;
  // `bytes`, the weight bytes the launch reads, goes to kernelTimes.
  bool launch(void *fn, unsigned grid, unsigned block, void **args,
              std::string &error, const char *name = "", int layer = -1,
              uint64_t bytes = 0);
  // An event (freed with the driver), recorded on the stream, waited for.
  bool createEvent(void *&event, std::string &error);
  bool record(void *event, std::string &error);
  bool wait(void *event, std::string &error);
  // Waits for everything enqueued.
  bool synchronize(std::string &error);

  // CUDA graphs (runtime/cuda_graph.cpp). The launches and asynchronous
  // copies made between beginGraph(slot) and endGraph() are held, not
  // enqueued (no waits in between). endGraph compares them with the slot's
  // graph: the kernels, launch shapes, every argument's bytes, the copies'
  // addresses and sizes. The same work launches that graph as one call;
  // other work is captured into a new graph for the slot, which is then
  // launched. So a caller whose work is the same every time (a decoded
  // token's layers) pays the launches once, and a caller whose work
  // changed still gets exactly what it asked for. graphsUsable() is false
  // where the driver lacks the entry points (cuFuncGetParamInfo: CUDA
  // 12.4), with sync debugging or kernel times (each launch apart), after
  // a capture the driver refused (graphNote() says why; the held work then
  // ran directly), or where PINFER_CUDA_GRAPHS=0.
  bool graphsUsable() const;
  void beginGraph(int slot);
  bool endGraph(std::string &error);
  // Drops held work (a caller that failed before endGraph).
  void cancelGraph() {
    graphSlot_ = -1;
    held_.clear();
  }
  const std::string &graphNote() const { return graphNote_; }
  long graphLaunches() const { return graphLaunches_; }
  long graphCaptures() const { return graphCaptures_; }

private:
  bool check(int rc, const char *call, std::string &error) const;
  // check() for a call that completes earlier work: a failure names the
  // kernels enqueued since the last synchronisation.
  bool checkSync(int rc, const char *call, std::string &error);
  // Makes the context current on the calling thread (each thread has its
  // own current context; the executor may be driven from several).
  bool current(std::string &error);

  void *lib_ = nullptr;
  void *ctx_ = nullptr;
  void *module_ = nullptr;
  void *stream_ = nullptr;
  int device_ = 0;
  int cc_ = 0;
  bool syncDebug_ = false;
  std::string deviceName_;
  const char *moduleKind_ = "";
  std::string moduleNote_;
  std::unordered_map<std::string, std::string> aliases_;
  std::vector<DevPtr> allocs_;
  DevPtr arena_ = 0; // the reservation
  size_t arenaBytes_ = 0, arenaUsed_ = 0;
  size_t buffers_ = 0, beyond_ = 0;
  std::vector<void *> hostAllocs_, events_;
  std::vector<std::string> pending_; // kernels since the last sync

  // One held launch or copy.
  struct HeldOp {
    enum Kind { Kernel, Upload, Download } kind = Kernel;
    void *fn = nullptr;
    unsigned grid = 0, block = 0;
    std::vector<unsigned char> args; // the arguments' bytes, packed
    std::vector<size_t> offsets;     // where each starts in args
    DevPtr dev = 0;
    void *host = nullptr;
    size_t bytes = 0;
    std::string what; // the kernel and layer, for errors
    bool sameWork(const HeldOp &o) const;
  };
  struct Graph {
    void *exec = nullptr; // CUgraphExec
    std::vector<HeldOp> ops;
  };
  static constexpr int kGraphSlots = 3;
  Graph graphs_[kGraphSlots];
  int graphSlot_ = -1; // held work goes to this slot's graph
  std::vector<HeldOp> held_;
  bool graphsOff_ = false;
  std::string graphNote_;
  long graphLaunches_ = 0, graphCaptures_ = 0;
  // Each kernel's parameter sizes, from cuFuncGetParamInfo.
  std::unordered_map<void *, std::vector<size_t>> paramSizes_;
  bool hold(void *fn, unsigned grid, unsigned block, void **args,
            const std::string &what, std::string &error);
  // Enqueues held work for real (issueAll: and names its kernels for the
  // errors of the next synchronisation).
  bool issue(const HeldOp &op, std::string &error);
  bool issueAll(const std::vector<HeldOp> &ops, std::string &error);
  // An asynchronous copy held (kind: HeldOp::Upload or Download).
  bool holdCopy(int kind, DevPtr dev, void *host, size_t bytes);
  // cuLaunchKernel on the stream (launchNow: and the kernel named for the
  // next synchronisation's errors, and the sync-debug wait).
  bool launchCall(void *fn, unsigned grid, unsigned block, void **args,
                  const std::string &what, std::string &error);
  bool launchNow(void *fn, unsigned grid, unsigned block, void **args,
                 const std::string &what, std::string &error);
  // The --gpu-sync-debug wait after a launch, then checkGuards.
  bool afterLaunch(void *fn, void **args, const std::string &what,
                   std::string &error);
  // --gpu-sync-debug: after launch `what` has completed, the guards of the
  // buffers its arguments point into (and of the buffer before each, which
  // a write before a buffer's start reaches) hold kDeviceGuardByte; every
  // guard where the driver gives no parameter sizes. A changed byte is an
  // error naming the kernel, the buffer and the byte.
  bool checkGuards(void *fn, void **args, const std::string &what,
                   std::string &error);
  bool checkGuard(std::map<DevPtr, size_t>::const_iterator buffer,
                  const std::string &what, std::string &error);
  // The parameter sizes of `fn` (cuFuncGetParamInfo), cached; empty where
  // the driver gives none.
  const std::vector<size_t> &paramSizes(void *fn);
  // Buffers carved from the reservation under --gpu-sync-debug: start ->
  // size; each one's guard follows it.
  std::map<DevPtr, size_t> guarded_;
  size_t guardChecks_ = 0;
  bool launchGraph(Graph &g, std::string &error);
  void destroyGraphs();

  // --gpu-profile (runtime/cuda_profile.cpp).
  bool profile_ = false;
  const char *profPhase_ = "";
  struct Timed {
    size_t slot; // in times_
    void *start, *end;
  };
  std::vector<Timed> timed_;       // launched, times not read yet
  std::vector<void *> freeEvents_; // timing events to reuse
  std::vector<KernelTime> times_;
  bool launchTimed(void *fn, unsigned grid, unsigned block, void **args,
                   const std::string &what, const char *name, uint64_t bytes,
                   std::string &error);
  bool timingEvent(void *&event, std::string &error);
  // The launches whose end events have passed; all of them when `all`
  // (after the stream was waited for).
  bool readTimes(bool all, std::string &error);

  // Driver entry points (CUresult is an int).
  int (*cuInit_)(unsigned) = nullptr;
  int (*cuDeviceGetCount_)(int *) = nullptr;
  int (*cuDeviceGet_)(int *, int) = nullptr;
  int (*cuDeviceGetName_)(char *, int, int) = nullptr;
  int (*cuDeviceGetAttribute_)(int *, int, int) = nullptr;
  int (*cuDevicePrimaryCtxRetain_)(void **, int) = nullptr;
  int (*cuDevicePrimaryCtxRelease_)(int) = nullptr;
  int (*cuCtxSetCurrent_)(void *) = nullptr;
  int (*cuMemGetInfo_)(size_t *, size_t *) = nullptr;
  int (*cuModuleLoadData_)(void **, const void *) = nullptr;
  int (*cuModuleUnload_)(void *) = nullptr;
  int (*cuModuleGetFunction_)(void **, void *, const char *) = nullptr;
  int (*cuMemAlloc_)(DevPtr *, size_t) = nullptr;
  int (*cuMemFree_)(DevPtr) = nullptr;
  int (*cuMemHostAlloc_)(void **, size_t, unsigned) = nullptr;
  int (*cuMemFreeHost_)(void *) = nullptr;
  int (*cuMemcpyHtoD_)(DevPtr, const void *, size_t) = nullptr;
  int (*cuMemcpyDtoH_)(void *, DevPtr, size_t) = nullptr;
  int (*cuMemcpyHtoDAsync_)(DevPtr, const void *, size_t, void *) = nullptr;
  int (*cuMemcpyDtoHAsync_)(void *, DevPtr, size_t, void *) = nullptr;
  int (*cuStreamCreate_)(void **, unsigned) = nullptr;
  int (*cuStreamDestroy_)(void *) = nullptr;
  int (*cuStreamSynchronize_)(void *) = nullptr;
  int (*cuEventCreate_)(void **, unsigned) = nullptr;
  int (*cuEventDestroy_)(void *) = nullptr;
  int (*cuEventRecord_)(void *, void *) = nullptr;
  int (*cuEventSynchronize_)(void *) = nullptr;
  int (*cuLaunchKernel_)(void *, unsigned, unsigned, unsigned, unsigned,
                         unsigned, unsigned, unsigned, void *, void **,
                         void **) = nullptr;
  int (*cuGetErrorString_)(int, const char **) = nullptr;
  int (*cuEventElapsedTime_)(float *, void *, void *) = nullptr;
  // Optional: graphs.
  int (*cuFuncGetParamInfo_)(void *, size_t, size_t *, size_t *) = nullptr;
  int (*cuStreamBeginCapture_)(void *, int) = nullptr;
  int (*cuStreamEndCapture_)(void *, void **) = nullptr;
  int (*cuGraphInstantiateWithFlags_)(void **, void *,
                                      unsigned long long) = nullptr;
  int (*cuGraphLaunch_)(void *, void *) = nullptr;
  int (*cuGraphDestroy_)(void *) = nullptr;
  int (*cuGraphExecDestroy_)(void *) = nullptr;
};

} // namespace pinfer
