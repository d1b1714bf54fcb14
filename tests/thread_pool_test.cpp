// ThreadPool: every index is covered exactly once, per-index tasks never run concurrently with
// themselves, and back-to-back jobs (thousands, as decoding makes) never mix up.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace slm {
namespace {

TEST(ThreadPool, ParallelForCoversEachIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 16, 17, 100, 1000, 32000}) {
      for (int64_t grain : {1, 4, 16, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          ASSERT_LT(b, e);
          // Chunks start on a grain boundary so kernels can rely on alignment.
          ASSERT_EQ(b % grain, 0) << "n " << n << " grain " << grain;
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << threads << " threads, n " << n << ", grain " << grain << ", i " << i;
      }
    }
  }
}

TEST(ThreadPool, ParallelForChunksShrinkTowardTheEnd) {
  ThreadPool pool(2);
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.parallel_for(800, 1, [&](int64_t b, int64_t e) {
    std::lock_guard lock(mu);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  ASSERT_GE(chunks.size(), 4u);
  for (size_t i = 1; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].first, chunks[i - 1].second);
    EXPECT_LE(chunks[i].second - chunks[i].first, chunks[i - 1].second - chunks[i - 1].first);
  }
  // 8 chunks, edges at 800 * (1 - (1 - c/8)^2): 188 first, 12 last.
  EXPECT_EQ(chunks.front().second - chunks.front().first, 188);
  EXPECT_EQ(chunks.back().second - chunks.back().first, 12);
}

TEST(ThreadPool, RunCallsEveryIndexOnceAndExclusively) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> busy(3), calls(3);
  for (int rep = 0; rep < 2000; ++rep) {
    pool.run([&](int t) {
      ASSERT_GE(t, 0);
      ASSERT_LT(t, 3);
      ASSERT_EQ(busy[t].fetch_add(1), 0) << "index " << t << " ran on two threads at once";
      calls[t]++;
      busy[t]--;
    });
  }
  for (int t = 0; t < 3; ++t) EXPECT_EQ(calls[t].load(), 2000);
}

TEST(ThreadPool, ManySmallJobsSumCorrectly) {
  // Stresses the hand-over between generations: a late worker must never run a task of a job
  // that already finished, nor miss one.
  ThreadPool pool(2);
  for (int rep = 0; rep < 20000; ++rep) {
    std::atomic<int64_t> sum{0};
    const int64_t n = 1 + rep % 64;
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), n * (n - 1) / 2) << "rep " << rep;
  }
}

TEST(ThreadPool, OversubscribedPoolStillFinishes) {
  // More threads than cores: the caller must finish tasks a descheduled worker never took.
  const int threads = static_cast<int>(std::thread::hardware_concurrency()) * 4 + 1;
  ThreadPool pool(threads);
  std::atomic<int64_t> count{0};
  for (int rep = 0; rep < 200; ++rep)
    pool.parallel_for(1000, 1, [&](int64_t b, int64_t e) { count += e - b; });
  EXPECT_EQ(count.load(), 200 * 1000);
}

TEST(ThreadPool, RejectsBadThreadCounts) {
  EXPECT_THROW(ThreadPool(0), Error);
  EXPECT_THROW(ThreadPool(-3), Error);
}

}  // namespace
}  // namespace slm
