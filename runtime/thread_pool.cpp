// Persistent worker threads for the CPU kernels; see thread_pool.h.
//
// Synchronisation is one mutex and two condition variables: the pool runs a
// few hundred tasks per token, each of which is at least a whole matrix, so
// the wake-up latency is small next to the work, and blocking (rather than
// spinning) keeps the pool polite on machines whose cores are shared.
#include "runtime/thread_pool.h"

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

void ThreadPool::run(Task task, void *ctx) {
  if (nThreads_ == 1) {
    task(ctx, 0, 1);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = task;
    ctx_ = ctx;
    pending_ = nThreads_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  task(ctx, 0, nThreads_);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    Task task;
    void *ctx;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      task = task_;
      ctx = ctx_;
    }
    task(ctx, index, nThreads_);
    bool last;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last = --pending_ == 0;
    }
    if (last)
      done_.notify_one();
  }
}

} // namespace pinfer
