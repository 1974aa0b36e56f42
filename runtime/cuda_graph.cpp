// CUDA graphs for CudaDriver; see cuda_driver.h. A decoded token enqueues
// the same few hundred launches every time (the resident program's layers,
// kernels whose arguments do not depend on the position); launched one by
// one, each costs the host a driver call and the GPU a gap between
// dependent kernels. Held and compared instead, the token is one
// cuGraphLaunch after its first time.
#include "runtime/cuda_driver.h"

#include <cstdlib>
#include <cstring>

namespace pinfer {

namespace {
// CU_STREAM_CAPTURE_MODE_RELAXED: other threads' driver calls (a server's
// HTTP threads allocate nothing, but the mode costs nothing) stay legal
// during the capture.
constexpr int kCaptureRelaxed = 2;
} // namespace

bool CudaDriver::HeldOp::sameWork(const HeldOp &o) const {
  return kind == o.kind && fn == o.fn && grid == o.grid && block == o.block &&
         args == o.args && offsets == o.offsets && dev == o.dev &&
         host == o.host && bytes == o.bytes;
}

bool CudaDriver::graphsUsable() const {
  if (graphsOff_ || syncDebug_ || profile_ || !ctx_)
    return false;
  const char *env = std::getenv("PINFER_CUDA_GRAPHS");
  return !(env && std::strcmp(env, "0") == 0);
}

void CudaDriver::beginGraph(int slot) {
  if (slot >= 0 && slot < kGraphSlots && graphsUsable()) {
    graphSlot_ = slot;
    held_.clear();
  }
}

bool CudaDriver::hold(void *fn, unsigned grid, unsigned block, void **args,
                      const std::string &what, std::string &error) {
  const std::vector<size_t> &sizes = paramSizes(fn);
  if (sizes.empty() && args) {
    // No parameter layout from this driver: graphs off, the held work and
    // this launch go as they came.
    graphsOff_ = true;
    graphNote_ = "CUDA cuFuncGetParamInfo gave no parameters for " + what +
                 "; launching kernels one by one";
    graphSlot_ = -1;
    std::vector<HeldOp> ops;
    ops.swap(held_);
    return issueAll(ops, error) &&
           launchNow(fn, grid, block, args, what, error);
  }
  HeldOp op;
  op.fn = fn;
  op.grid = grid;
  op.block = block;
  op.what = what;
  for (size_t i = 0; i < sizes.size(); ++i) {
    op.offsets.push_back(op.args.size());
    const auto *p = static_cast<const unsigned char *>(args[i]);
    op.args.insert(op.args.end(), p, p + sizes[i]);
  }
  held_.push_back(std::move(op));
  return true;
}

bool CudaDriver::issue(const HeldOp &op, std::string &error) {
  switch (op.kind) {
  case HeldOp::Upload:
    return check(cuMemcpyHtoDAsync_(op.dev, op.host, op.bytes, stream_),
                 "cuMemcpyHtoDAsync", error);
  case HeldOp::Download:
    return check(cuMemcpyDtoHAsync_(op.host, op.dev, op.bytes, stream_),
                 "cuMemcpyDtoHAsync", error);
  case HeldOp::Kernel:
    break;
  }
  std::vector<void *> args;
  for (size_t off : op.offsets)
    args.push_back(const_cast<unsigned char *>(op.args.data()) + off);
  return launchCall(op.fn, op.grid, op.block, args.data(), op.what, error);
}

bool CudaDriver::holdCopy(int kind, DevPtr dev, void *host, size_t bytes) {
  HeldOp op;
  op.kind = HeldOp::Kind(kind);
  op.dev = dev;
  op.host = host;
  op.bytes = bytes;
  held_.push_back(std::move(op));
  return true;
}

bool CudaDriver::issueAll(const std::vector<HeldOp> &ops, std::string &error) {
  for (const HeldOp &op : ops) {
    if (!issue(op, error))
      return false;
    if (op.kind == HeldOp::Kernel)
      pending_.push_back(op.what);
  }
  return true;
}

bool CudaDriver::launchGraph(Graph &g, std::string &error) {
  if (!check(cuGraphLaunch_(g.exec, stream_), "cuGraphLaunch", error))
    return false;
  ++graphLaunches_;
  for (const HeldOp &op : g.ops)
    if (op.kind == HeldOp::Kernel)
      pending_.push_back(op.what);
  return true;
}

bool CudaDriver::endGraph(std::string &error) {
  if (graphSlot_ < 0)
    return true;
  Graph &g = graphs_[graphSlot_];
  graphSlot_ = -1;
  std::vector<HeldOp> ops;
  ops.swap(held_);
  if (!current(error))
    return false;
  bool same = g.exec && ops.size() == g.ops.size();
  for (size_t i = 0; same && i < ops.size(); ++i)
    same = ops[i].sameWork(g.ops[i]);
  if (same)
    return launchGraph(g, error);

  // Captured into a new graph for the slot.
  std::string why;
  void *graph = nullptr, *exec = nullptr;
  bool captured = check(cuStreamBeginCapture_(stream_, kCaptureRelaxed),
                        "cuStreamBeginCapture", why);
  for (size_t i = 0; captured && i < ops.size(); ++i)
    if (!issue(ops[i], why)) {
      // The capture is over; what it made is dropped.
      if (cuStreamEndCapture_(stream_, &graph) == 0 && graph)
        cuGraphDestroy_(graph);
      error = why;
      return false;
    }
  if (captured)
    captured = check(cuStreamEndCapture_(stream_, &graph), "cuStreamEndCapture",
                     why) &&
               check(cuGraphInstantiateWithFlags_(&exec, graph, 0),
                     "cuGraphInstantiateWithFlags", why);
  if (graph)
    cuGraphDestroy_(graph);
  if (!captured) {
    // Graphs off from here on; this work goes as it came.
    graphsOff_ = true;
    graphNote_ = why + "; launching kernels one by one";
    destroyGraphs();
    return issueAll(ops, error);
  }
  if (g.exec)
    cuGraphExecDestroy_(g.exec);
  g.exec = exec;
  g.ops = std::move(ops);
  ++graphCaptures_;
  return launchGraph(g, error);
}

void CudaDriver::destroyGraphs() {
  for (Graph &g : graphs_) {
    if (g.exec)
      cuGraphExecDestroy_(g.exec);
    g.exec = nullptr;
    g.ops.clear();
  }
}

} // namespace pinfer
