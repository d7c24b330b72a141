// A small fixed pool of std::threads for pipelining host work (image decoding) with model
// forwards. Tasks return through std::future, so an exception thrown by a task (ImageError)
// reaches whoever calls get(), with its type.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace internvl::common {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1
  // Tasks not yet started are dropped (their futures report broken_promise); running ones are
  // waited for, so nothing they reference may go away before the pool does.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }

  template <typename F>
  std::future<std::invoke_result_t<F>> submit(F&& task) {
    // packaged_task is move-only and std::function wants a copyable callable: share it.
    auto packaged = std::make_shared<std::packaged_task<std::invoke_result_t<F>()>>(std::forward<F>(task));
    auto future = packaged->get_future();
    enqueue([packaged] { (*packaged)(); });
    return future;
  }

 private:
  void enqueue(std::function<void()> task);
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace internvl::common
