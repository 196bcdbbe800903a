// ThreadPool: every index is visited exactly once, thread indices stay in range and unique
// among concurrent chunks, nested calls run serially, and the pool survives many small jobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace slm {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.n_threads(), threads);
    for (int64_t n : {0, 1, 7, 100, 10007}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
    }
  }
}

TEST(ThreadPool, ThreadIndexInRangeAndExclusive) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> busy(4);
  std::atomic<bool> bad{false};
  pool.parallel_for(
      1000,
      [&](int64_t, int64_t, int tid) {
        if (tid < 0 || tid >= 4) {
          bad = true;
          return;
        }
        if (busy[static_cast<size_t>(tid)].fetch_add(1) != 0) bad = true;
        volatile int spin = 0;
        for (int i = 0; i < 1000; ++i) spin = spin + i;
        busy[static_cast<size_t>(tid)].fetch_sub(1);
      },
      1);
  EXPECT_FALSE(bad.load());
}

TEST(ThreadPool, MinChunkRespected) {
  ThreadPool pool(4);
  std::atomic<bool> small{false};
  pool.parallel_for(
      1000,
      [&](int64_t b, int64_t e) {
        if (e - b < 100 && e != 1000) small = true;
      },
      100);
  EXPECT_FALSE(small.load());
}

TEST(ThreadPool, ChunksShrinkWithWhatIsLeft) {
  // Guided claims: a chunk starting at b holds max(min_chunk, ceil((n - b) / (2 * threads)))
  // items (or what is left), so the chunks, in index order, never grow.
  constexpr int64_t n = 1000, min_chunk = 5;
  constexpr int threads = 2;
  ThreadPool pool(threads);
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lk(mu);
        chunks.emplace_back(b, e);
      },
      min_chunk);
  std::sort(chunks.begin(), chunks.end());
  ASSERT_FALSE(chunks.empty());
  int64_t at = 0;
  for (const auto& [b, e] : chunks) {
    ASSERT_EQ(b, at);
    const int64_t share = (n - b + 2 * threads - 1) / (2 * threads);
    EXPECT_EQ(e - b, std::min(n - b, std::max(min_chunk, share))) << "chunk at " << b;
    at = e;
  }
  EXPECT_EQ(at, n);
  EXPECT_EQ(chunks.front().second, 250);  // a quarter of the job first
}

TEST(ThreadPool, NestedRunsSerially) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  pool.parallel_for(10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.parallel_for(5, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
    }
  });
  EXPECT_EQ(total.load(), 50);
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(2);
  int64_t sum = 0;
  for (int rep = 0; rep < 20000; ++rep) {
    std::atomic<int64_t> s{0};
    pool.parallel_for(4, [&](int64_t b, int64_t e) { s += e - b; });
    sum += s.load();
  }
  EXPECT_EQ(sum, 80000);
}

// More busy threads than cores: workers are often not scheduled when a job is published, so
// jobs are finished by whoever runs, and late workers meet jobs that were already replaced.
// Each job's items must still be covered exactly once, by that job's function.
TEST(ThreadPool, OversubscribedPoolsStayExact) {
  const int n_pools = 6;
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int p = 0; p < n_pools; ++p) {
    callers.emplace_back([&failures, p] {
      ThreadPool pool(3);
      for (int rep = 0; rep < 3000; ++rep) {
        const int64_t n = 1 + (rep * 7 + p) % 23;
        std::vector<int> hits(static_cast<size_t>(n), 0);
        const int tag = rep;
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)] += 1 + tag * 0;
        });
        for (int h : hits) {
          if (h != 1) failures++;
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace slm
