// Persistent worker threads for the CPU kernels; see thread_pool.h.
//
// Synchronisation is one mutex and two condition variables: the pool runs a
// few hundred tasks per token, each of which is at least a whole matrix, so
// the wake-up latency is small next to the work, and blocking (rather than
// spinning) keeps the pool polite on machines whose cores are shared. An
// optional bounded poll before blocking (setSpinMicros) trades that
// politeness for latency. It is off in the pool itself; text generation
// turns it on (GenerateOptions::pollMicros, --poll), where it measured 1.3x
// faster on a quiet 2-core machine and slower on a loaded one
// (docs/performance.md).
#include "runtime/thread_pool.h"

#include <chrono>

namespace pinfer {

ThreadPool::ThreadPool(int nThreads) : nThreads_(nThreads < 1 ? 1 : nThreads) {
  workers_.reserve(nThreads_ - 1);
  for (int i = 1; i < nThreads_; ++i)
    workers_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

int ThreadPool::hardwareThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

namespace {

// Polls `done` for up to `us` microseconds; true when it became true.
template <typename Pred> bool spinUntil(int us, const Pred &done) {
  if (us <= 0)
    return done();
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done())
        return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= end)
      return done();
  }
}

} // namespace

void ThreadPool::run(Task task, void *ctx) {
  if (nThreads_ == 1) {
    task(ctx, 0, 1);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = task;
    ctx_ = ctx;
    pending_.store(nThreads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  task(ctx, 0, nThreads_);
  if (spinUntil(spinMicros(), [this] {
        return pending_.load(std::memory_order_acquire) == 0;
      }))
    return;
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_.load() == 0; });
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    Task task;
    void *ctx;
    // A poller that sees the new generation still takes the mutex, which
    // orders its reads of task_ and ctx_ after run() wrote them.
    spinUntil(spinMicros(), [&] {
      return generation_.load(std::memory_order_acquire) != seen;
    });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_)
        return;
      seen = generation_.load();
      task = task_;
      ctx = ctx_;
    }
    task(ctx, index, nThreads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Taking the mutex before notifying closes the window in which the
      // caller has checked pending_ but not yet started waiting.
      { std::lock_guard<std::mutex> lock(mutex_); }
      done_.notify_one();
    }
  }
}

} // namespace pinfer
