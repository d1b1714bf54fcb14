// A fixed pool of worker threads for data-parallel kernels. The calling thread takes part, so a
// pool of N threads starts N-1 workers. Decoding runs dozens of parallel regions per token, so
// workers spin briefly on an atomic generation counter before sleeping: waking a sleeping thread
// costs tens of microseconds, which at 500 tokens/s would be a large share of the time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace slm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index) once on each of the size() threads and waits for all of them.
  // Not reentrant: fn must not call run() on the same pool.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into contiguous chunks, one per thread, aligned to `grain` (the last may be
  // shorter); fn(begin, end) runs for each non-empty chunk.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// Threads to use when the user gives none: the hardware's count, at least 1.
int default_thread_count();

}  // namespace slm
