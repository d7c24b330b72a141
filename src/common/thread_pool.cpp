#include "common/thread_pool.h"

#include "common/check.h"

namespace internvl::common {

ThreadPool::ThreadPool(int threads) {
  INTERNVL_CHECK(threads >= 1, InvalidArgument, "ThreadPool threads must be >= 1, got ", threads);
  workers_.reserve(static_cast<size_t>(threads));
  try {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  } catch (...) {  // std::system_error from thread creation: stop the ones that started
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  // `dropped` goes here, outside the lock: destroying a packaged_task sets its future's error.
}

void ThreadPool::enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void ThreadPool::work() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();  // packaged_task: exceptions are stored in the future, never escape here
  }
}

}  // namespace internvl::common
