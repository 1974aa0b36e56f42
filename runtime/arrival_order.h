// A lock taken in arrival order (a ticket lock): the server's one decoder
// serves requests first come, first served. std::mutex promises no order,
// so under steady load a client could wait behind later ones indefinitely.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pinfer {

class ArrivalOrder {
public:
  // BasicLockable, for std::lock_guard.
  void lock() {
    std::unique_lock<std::mutex> hold(mu_);
    const uint64_t ticket = next_++;
    turn_.wait(hold, [&] { return serving_ == ticket; });
  }
  void unlock() {
    {
      std::lock_guard<std::mutex> hold(mu_);
      ++serving_;
    }
    turn_.notify_all();
  }
  // Tickets taken and not yet released: the holder and those waiting.
  uint64_t queued() {
    std::lock_guard<std::mutex> hold(mu_);
    return next_ - serving_;
  }

private:
  std::mutex mu_;
  std::condition_variable turn_;
  uint64_t next_ = 0, serving_ = 0;
};

} // namespace pinfer
