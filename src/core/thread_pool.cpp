#include "core/thread_pool.h"

#include <algorithm>
#include <string>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/error.h"

namespace slm {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spin iterations before an idle worker sleeps, or before a waiting caller starts yielding.
constexpr int kSpinIterations = 20000;
// Chunks per thread in parallel_for: enough for a fast thread to take over a slow one's share.
constexpr int64_t kChunksPerThread = 4;

inline uint64_t pack(uint32_t gen, int64_t n_tasks, int64_t next) {
  return (static_cast<uint64_t>(gen) << 32) | (static_cast<uint64_t>(n_tasks) << 16) |
         static_cast<uint64_t>(next);
}
inline uint32_t gen_of(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
inline int64_t tasks_of(uint64_t v) { return static_cast<int64_t>((v >> 16) & 0xffff); }
inline int64_t next_of(uint64_t v) { return static_cast<int64_t>(v & 0xffff); }

}  // namespace

int default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1 || n_threads > 1024)
    throw Error("thread count must be between 1 and 1024, got " + std::to_string(n_threads));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(uint32_t gen) {
  uint64_t v = next_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(v) != gen || next_of(v) >= tasks_of(v)) return;
    if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    (*task_)(next_of(v));
    done_.fetch_add(1, std::memory_order_acq_rel);
    v = next_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    work(gen);
  }
}

void ThreadPool::run_tasks(int64_t n_tasks, const std::function<void(int64_t)>& task) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  task_ = &task;
  done_.store(0, std::memory_order_relaxed);
  next_.store(pack(gen, n_tasks, 0), std::memory_order_release);
  {
    // Taking the mutex orders the increment with a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.store(gen, std::memory_order_release);
  }
  wake_.notify_all();
  work(gen);
  // Only tasks that a worker claimed and is still running are left.
  for (int spin = 0; done_.load(std::memory_order_acquire) != n_tasks; ++spin) {
    if (spin < kSpinIterations)
      cpu_relax();
    else
      std::this_thread::yield();
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  const std::function<void(int)>* f = &fn;
  run_tasks(n_threads_, [f](int64_t i) { (*f)(static_cast<int>(i)); });
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t blocks = (n + grain - 1) / grain;
  const int64_t chunks = std::min<int64_t>({blocks, n_threads_ * kChunksPerThread, kMaxTasks});
  if (n_threads_ == 1 || chunks <= 1) {
    fn(0, n);
    return;
  }
  // One pointer captured: the std::function stays in its small buffer (no allocation per call,
  // which matters at dozens of parallel regions per decoded token).
  struct Job {
    int64_t n, grain, blocks, chunks;
    const std::function<void(int64_t, int64_t)>* fn;
    // Chunk c starts at block blocks * (1 - (1 - c/chunks)^2): large chunks first, small ones
    // last, so that the thread finishing last waits on a small chunk.
    int64_t edge(int64_t c) const {
      const __int128 left = chunks - c;
      return blocks - static_cast<int64_t>(blocks * left * left / (static_cast<__int128>(chunks) * chunks));
    }
  } job{n, grain, blocks, chunks, &fn};
  const Job* j = &job;
  run_tasks(chunks, [j](int64_t c) {
    const int64_t b0 = j->edge(c), b1 = j->edge(c + 1);
    const int64_t begin = b0 * j->grain, end = std::min(j->n, b1 * j->grain);
    if (begin < end) (*j->fn)(begin, end);
  });
}

}  // namespace slm
