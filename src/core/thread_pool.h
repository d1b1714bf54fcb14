// A fixed pool of worker threads for data-parallel kernels. The calling thread takes part, so a
// pool of N threads starts N-1 workers.
//
// Work is split into tasks that every thread, the caller included, grabs from a shared atomic
// counter. A call returns when all its tasks are done, not when every worker has woken up: on a
// machine where another process holds a core, the caller simply runs the tasks a descheduled
// worker never took, instead of waiting for it (which made 2-thread decoding ten times slower
// than 1 thread on a busy machine). Decoding runs dozens of parallel regions per token, so idle
// workers spin briefly before sleeping: waking a sleeping thread costs tens of microseconds.
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

  // Runs fn(i) once for each i in [0, size()) and waits for all of them. Each index runs on one
  // thread at a time, so per-index scratch buffers are safe; which thread runs it is not fixed.
  // Not reentrant: fn must not call run() or parallel_for() on the same pool.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into contiguous chunks aligned to `grain` (the last may be shorter), a few per
  // thread, and runs fn(begin, end) for each chunk on whichever thread is free. Chunks shrink
  // from first to last, so the call does not end waiting on one thread's large last chunk.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  // Runs task(i) for i in [0, n_tasks) on all threads; n_tasks <= kMaxTasks.
  void run_tasks(int64_t n_tasks, const std::function<void(int64_t)>& task);
  // Grabs and runs tasks of generation `gen` until none is left; false if the job is not `gen`.
  void work(uint32_t gen);
  void worker_loop();

  static constexpr int64_t kMaxTasks = 0xffff;

  int n_threads_;
  std::vector<std::thread> workers_;
  // The current job. Written by the caller before it publishes `next_`, read by a worker only
  // after it claimed a task of that generation (so it is never rewritten while in use).
  const std::function<void(int64_t)>* task_ = nullptr;
  // generation (32 bits) | number of tasks (16 bits) | next unclaimed task (16 bits)
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// Threads to use when the user gives none: the hardware's count, at least 1.
int default_thread_count();

}  // namespace slm
