// common::ThreadPool: results through futures, exceptions keep their type, shutdown with work
// still queued neither hangs nor loses a future.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "internvl/error.h"

using internvl::common::ThreadPool;

TEST(ThreadPool, ResultsComeBackThroughTheirFutures) {
  for (const int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    std::vector<std::future<int>> futures;
    for (int i = 0; i < 50; ++i) futures.push_back(pool.submit([i] { return i * i; }));
    for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[static_cast<size_t>(i)].get(), i * i);
  }
}

TEST(ThreadPool, TasksRunOffTheCallingThread) {
  ThreadPool pool(1);
  const auto id = pool.submit([] { return std::this_thread::get_id(); }).get();
  EXPECT_NE(id, std::this_thread::get_id());
}

TEST(ThreadPool, ExceptionsKeepTheirTypeAndMessage) {
  ThreadPool pool(2);
  auto failing = pool.submit([]() -> int { throw internvl::ImageError("broken.jpg: cannot decode"); });
  auto fine = pool.submit([] { return 7; });
  try {
    failing.get();
    ADD_FAILURE() << "nothing thrown";
  } catch (const internvl::ImageError& e) {
    EXPECT_STREQ(e.what(), "broken.jpg: cannot decode");
  } catch (...) {
    ADD_FAILURE() << "not an ImageError";
  }
  EXPECT_EQ(fine.get(), 7);  // one task's failure does not stop the pool
}

TEST(ThreadPool, DestroyingWithQueuedTasksDropsOrRunsEachOnce) {
  std::atomic<int> runs{0};
  std::vector<std::future<void>> futures;
  std::promise<void> gate, started;
  auto opened = gate.get_future().share();
  {
    ThreadPool pool(1);
    futures.push_back(pool.submit([opened, &started, &runs] {
      started.set_value();
      opened.wait();
      ++runs;
    }));
    started.get_future().wait();  // the first task is running, not queued
    for (int i = 0; i < 20; ++i) futures.push_back(pool.submit([&runs] { ++runs; }));
    gate.set_value();
  }  // the destructor returns: the running task finished, the rest ran or were dropped
  int ran = 0, dropped = 0;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    try {
      f.get();
      ++ran;
    } catch (const std::future_error& e) {
      EXPECT_EQ(e.code(), std::future_errc::broken_promise);
      ++dropped;
    }
  }
  EXPECT_EQ(ran, runs.load());
  EXPECT_EQ(ran + dropped, 21);
  EXPECT_GE(ran, 1);  // the task already running when the pool went away
}

TEST(ThreadPool, NeedsAtLeastOneThread) {
  EXPECT_THROW(ThreadPool(0), internvl::InvalidArgument);
  EXPECT_THROW(ThreadPool(-3), internvl::InvalidArgument);
}
