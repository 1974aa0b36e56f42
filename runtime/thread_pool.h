// A persistent pool of worker threads for the CPU kernels. Each operation of
// the forward pass (a matrix-vector product, attention over heads) is split
// into one contiguous range per thread; workers live for the whole run so
// that a token costs no thread creation and no allocation.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace pinfer {

class ThreadPool {
public:
  // A task receives the index of the thread running it (0 = the caller) and
  // the number of threads, and picks its share of the work from them.
  using Task = void (*)(void *ctx, int thread, int nThreads);

  // `nThreads` counts the calling thread; values < 1 mean 1.
  explicit ThreadPool(int nThreads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return nThreads_; }

  // Runs task(ctx, t, size()) for every t in [0, size()) and returns when all
  // have finished. The caller runs t = 0. Not reentrant.
  void run(Task task, void *ctx);

  // Splits [0, n) into size() contiguous ranges and calls fn(begin, end) on
  // each (empty ranges are skipped). `fn` is any callable; nothing is
  // allocated.
  template <typename Fn> void parallelFor(int64_t n, const Fn &fn) {
    struct Ctx {
      const Fn *fn;
      int64_t n;
    } ctx{&fn, n};
    run(
        [](void *p, int t, int nt) {
          const Ctx &c = *static_cast<const Ctx *>(p);
          int64_t begin = c.n * t / nt, end = c.n * (t + 1) / nt;
          if (begin < end)
            (*c.fn)(begin, end);
        },
        &ctx);
  }

  // The number of hardware threads, at least 1.
  static int hardwareThreads();

  // How long a thread polls for the next step (workers) or for the last
  // worker (the caller) before it blocks on the condition variable, in
  // microseconds; 0 blocks at once. Polling saves the futex wake-up between
  // the few hundred steps of a token when cores are free, and costs a
  // shared core's time when they are not (see docs/performance.md for the
  // measurement behind the default). Idle workers pick up a new value at
  // their next wait.
  void setSpinMicros(int us) {
    spinMicros_.store(us < 0 ? 0 : us, std::memory_order_relaxed);
  }
  int spinMicros() const { return spinMicros_.load(std::memory_order_relaxed); }
  static constexpr int kDefaultSpinMicros = 0;

private:
  void workerLoop(int index);

  int nThreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_; // workers wait here for a new generation
  std::condition_variable done_; // the caller waits here for the last worker
  Task task_ = nullptr;
  void *ctx_ = nullptr;
  // Written under mutex_ and also read without it by polling threads.
  std::atomic<uint64_t> generation_{0}; // bumped once per run()
  std::atomic<int> pending_{
      0}; // workers that have not finished this generation
  bool stop_ = false;
  std::atomic<int> spinMicros_{kDefaultSpinMicros}; // read by idle workers
};

} // namespace pinfer
