// Tests that the server's decoder lock (runtime/arrival_order.h) serves
// waiters in the order they arrived.
#include "runtime/arrival_order.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

using namespace pinfer;

TEST(ArrivalOrder, FirstComeFirstServed) {
  ArrivalOrder turn;
  std::mutex orderMu;
  std::vector<int> served;
  std::vector<std::thread> clients;
  turn.lock(); // busy: every client queues
  const int kClients = 12;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      std::lock_guard<ArrivalOrder> hold(turn);
      std::lock_guard<std::mutex> o(orderMu);
      served.push_back(i);
    });
    // The next client arrives only once this one holds its ticket.
    while (turn.queued() != uint64_t(i) + 2)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  turn.unlock();
  for (std::thread &t : clients)
    t.join();
  std::vector<int> expect(kClients);
  for (int i = 0; i < kClients; ++i)
    expect[size_t(i)] = i;
  EXPECT_EQ(served, expect);
  EXPECT_EQ(turn.queued(), 0u);
}
