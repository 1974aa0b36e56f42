// Kernel times for CudaDriver (executables' --gpu-profile); see
// cuda_driver.h. Each launch is bracketed by two timing events on the
// stream, so a kernel's time is what the GPU spent from its start to its
// end, without the host's share; the events are read after later waits
// (never forcing one) and go back to a pool.
#include "runtime/cuda_driver.h"

#include <algorithm>
#include <cctype>

namespace pinfer {

namespace {
// CUDA_ERROR_NOT_READY: the event has not been reached yet.
constexpr int kNotReady = 600;

// A kernel's name with its layer taken out ("attn_l3_wq" -> "attn_wq"), so
// that the table has one row per kind of kernel.
std::string kernelKind(const std::string &name) {
  for (size_t i = 0; i + 2 < name.size(); ++i) {
    if (name[i] != '_' || name[i + 1] != 'l' ||
        !std::isdigit((unsigned char)name[i + 2]))
      continue;
    size_t j = i + 2;
    while (j < name.size() && std::isdigit((unsigned char)name[j]))
      ++j;
    if (j == name.size())
      return name.substr(0, i);
    if (name[j] == '_')
      return name.substr(0, i + 1) + name.substr(j + 1);
  }
  return name;
}
} // namespace

bool CudaDriver::setProfile(bool on, std::string &error) {
  if (on && !cuEventElapsedTime_) {
    error = "--gpu-profile: this CUDA driver cannot time events "
            "(no cuEventElapsedTime)";
    return false;
  }
  profile_ = on;
  return true;
}

bool CudaDriver::timingEvent(void *&event, std::string &error) {
  if (!freeEvents_.empty()) {
    event = freeEvents_.back();
    freeEvents_.pop_back();
    return true;
  }
  // Flags 0: with timing, unlike createEvent's.
  if (!check(cuEventCreate_(&event, 0), "cuEventCreate", error))
    return false;
  events_.push_back(event);
  return true;
}

bool CudaDriver::launchTimed(void *fn, unsigned grid, unsigned block,
                             void **args, const std::string &what,
                             const char *name, uint64_t bytes,
                             std::string &error) {
  const std::string kind = kernelKind(name);
  size_t slot = 0;
  while (slot < times_.size() &&
         (times_[slot].kernel != kind || times_[slot].phase != profPhase_))
    ++slot;
  if (slot == times_.size()) {
    times_.emplace_back();
    times_.back().phase = profPhase_;
    times_.back().kernel = kind;
  }
  times_[slot].bytes += bytes;
  void *start = nullptr, *end = nullptr;
  if (!timingEvent(start, error))
    return false;
  if (!timingEvent(end, error)) {
    freeEvents_.push_back(start);
    return false;
  }
  // Both events are recorded before the pair is listed for readTimes (a
  // --gpu-sync-debug wait comes after both); until then a failure gives
  // them back.
  if (!check(cuEventRecord_(start, stream_), "cuEventRecord", error) ||
      !launchCall(fn, grid, block, args, what, error) ||
      !check(cuEventRecord_(end, stream_), "cuEventRecord", error)) {
    freeEvents_.push_back(start);
    freeEvents_.push_back(end);
    return false;
  }
  pending_.push_back(what);
  timed_.push_back({slot, start, end});
  return afterLaunch(fn, args, what, error);
}

bool CudaDriver::readTimes(bool all, std::string &error) {
  size_t done = 0;
  for (; done < timed_.size(); ++done) {
    const Timed &t = timed_[done];
    float ms = 0.f;
    const int rc = cuEventElapsedTime_(&ms, t.start, t.end);
    if (rc == kNotReady && !all)
      break;
    if (!check(rc, "cuEventElapsedTime", error)) {
      timed_.clear(); // the times are lost; later waits need not fail too
      return false;
    }
    times_[t.slot].launches += 1;
    times_[t.slot].ms += ms;
    freeEvents_.push_back(t.start);
    freeEvents_.push_back(t.end);
  }
  timed_.erase(timed_.begin(), timed_.begin() + long(done));
  return true;
}

bool CudaDriver::kernelTimes(std::vector<KernelTime> &out, std::string &error) {
  if (!synchronize(error) || !readTimes(true, error))
    return false;
  out.clear();
  for (const KernelTime &t : times_)
    if (t.launches)
      out.push_back(t);
  std::stable_sort(
      out.begin(), out.end(),
      [](const KernelTime &a, const KernelTime &b) { return a.ms > b.ms; });
  return true;
}

} // namespace pinfer
