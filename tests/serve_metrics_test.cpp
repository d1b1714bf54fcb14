// ServerMetrics renders Prometheus text format 0.0.4; the expected texts below are written out
// by hand from the format's rules, not produced by the code under test.
#include "serve/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace slm {
namespace {

TEST(ServerMetrics, FreshRegistryRendersOnlyUptime) {
  ServerMetrics m([] { return 3.0; });
  EXPECT_EQ(m.render(),
            "# HELP slm_uptime_seconds Seconds since the server started.\n"
            "# TYPE slm_uptime_seconds gauge\n"
            "slm_uptime_seconds 3\n");
}

TEST(ServerMetrics, SmallScenarioRendersExactly) {
  ServerMetrics m([] { return 12.5; });
  // 2^-8 and 0.75 are exact in binary, so the sum 0.75390625 is exact too.
  m.request_finished("tiny", "/v1/chat/completions", 200, 0.00390625);  // bucket le=0.005
  m.request_finished("tiny", "/v1/chat/completions", 200, 0.75);        // bucket le=1
  m.tokens("tiny", 7, 3);
  m.tokens("tiny", 5, 0);
  m.set_queue_depth("tiny", 4);
  m.set_queue_depth("tiny", 2);  // a gauge keeps the last value
  m.rejected("tiny", "queue_full");

  const std::string expected =
      "# HELP slm_completion_tokens_total Completion tokens generated.\n"
      "# TYPE slm_completion_tokens_total counter\n"
      "slm_completion_tokens_total{model=\"tiny\"} 3\n"
      "# HELP slm_prompt_tokens_total Prompt tokens processed.\n"
      "# TYPE slm_prompt_tokens_total counter\n"
      "slm_prompt_tokens_total{model=\"tiny\"} 12\n"
      "# HELP slm_queue_depth Requests waiting for a decoding slot.\n"
      "# TYPE slm_queue_depth gauge\n"
      "slm_queue_depth{model=\"tiny\"} 2\n"
      "# HELP slm_rejected_requests_total Requests refused or abandoned, by reason.\n"
      "# TYPE slm_rejected_requests_total counter\n"
      "slm_rejected_requests_total{model=\"tiny\",reason=\"queue_full\"} 1\n"
      "# HELP slm_request_duration_seconds Time from receiving a request to sending its last "
      "byte.\n"
      "# TYPE slm_request_duration_seconds histogram\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.001\"} 0\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.0025\"} 0\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.005\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.01\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.025\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.05\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.1\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.25\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"0.5\"} 1\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"1\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"2.5\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"5\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"10\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"30\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"60\"} 2\n"
      "slm_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",le=\"+Inf\"} 2\n"
      "slm_request_duration_seconds_sum{endpoint=\"/v1/chat/completions\"} 0.75390625\n"
      "slm_request_duration_seconds_count{endpoint=\"/v1/chat/completions\"} 2\n"
      "# HELP slm_requests_total Requests finished, by model, endpoint and HTTP status.\n"
      "# TYPE slm_requests_total counter\n"
      "slm_requests_total{model=\"tiny\",endpoint=\"/v1/chat/completions\",status=\"200\"} 2\n"
      "# HELP slm_uptime_seconds Seconds since the server started.\n"
      "# TYPE slm_uptime_seconds gauge\n"
      "slm_uptime_seconds 12.5\n";
  EXPECT_EQ(m.render(), expected);
  EXPECT_EQ(m.render(), expected) << "rendering must not change the state";
}

TEST(ServerMetrics, SeriesAreSortedByLabelValuesWhateverTheCallOrder) {
  ServerMetrics m([] { return 0.0; });
  m.rejected("zeta", "timeout");
  m.rejected("alpha", "timeout");
  m.rejected("alpha", "cancelled");
  m.rejected("alpha", "timeout");
  m.set_active_slots("b", 1);
  m.set_active_slots("a", 2);
  m.tokens_by_member("pair", "small", 10);
  m.tokens_by_member("pair", "large", 3);
  m.tokens_by_member("pair", "small", 5);
  EXPECT_EQ(m.render(),
            "# HELP slm_active_slots Requests decoding now.\n"
            "# TYPE slm_active_slots gauge\n"
            "slm_active_slots{model=\"a\"} 2\n"
            "slm_active_slots{model=\"b\"} 1\n"
            "# HELP slm_pair_tokens_total Tokens emitted by each member of a model pair.\n"
            "# TYPE slm_pair_tokens_total counter\n"
            "slm_pair_tokens_total{model=\"pair\",member=\"large\"} 3\n"
            "slm_pair_tokens_total{model=\"pair\",member=\"small\"} 15\n"
            "# HELP slm_rejected_requests_total Requests refused or abandoned, by reason.\n"
            "# TYPE slm_rejected_requests_total counter\n"
            "slm_rejected_requests_total{model=\"alpha\",reason=\"cancelled\"} 1\n"
            "slm_rejected_requests_total{model=\"alpha\",reason=\"timeout\"} 2\n"
            "slm_rejected_requests_total{model=\"zeta\",reason=\"timeout\"} 1\n"
            "# HELP slm_uptime_seconds Seconds since the server started.\n"
            "# TYPE slm_uptime_seconds gauge\n"
            "slm_uptime_seconds 0\n");
}

TEST(ServerMetrics, TokenHistogramsRenderWithModelLabel) {
  ServerMetrics m([] { return 1.0; });
  m.time_to_first_token("tiny", 0.125);  // le=0.25
  m.inter_token_latency("tiny", 100.0);  // above 60: only +Inf
  const std::string text = m.render();
  EXPECT_NE(text.find("# TYPE slm_time_to_first_token_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("slm_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"0.1\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("slm_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"0.25\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("slm_time_to_first_token_seconds_sum{model=\"tiny\"} 0.125\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE slm_inter_token_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("slm_inter_token_latency_seconds_bucket{model=\"tiny\",le=\"60\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("slm_inter_token_latency_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("slm_inter_token_latency_seconds_count{model=\"tiny\"} 1\n"),
            std::string::npos);
}

TEST(Histogram, BucketsAreCumulativeAndBoundsInclusive) {
  Histogram h({1, 2, 3});
  for (double v : {0.5, 1.0, 1.5, 3.0, 10.0, -1.0}) h.observe(v);
  // le=1: 0.5, 1.0 (a bound is inclusive), -1.0; le=2: +1.5; le=3: +3.0; +Inf: +10.0.
  EXPECT_EQ(h.cumulative_counts(), (std::vector<uint64_t>{3, 4, 5, 6}));
  EXPECT_EQ(h.count(), 6u);
  EXPECT_DOUBLE_EQ(h.sum(), 15.0);
}

TEST(Histogram, CumulativeCountsNeverDecreaseAndEndAtCount) {
  Histogram h(latency_buckets_seconds());
  ASSERT_EQ(latency_buckets_seconds().size(), 15u);
  double v = 0.0001;
  for (int i = 0; i < 200; ++i, v *= 1.07) h.observe(v);  // 1e-4 .. ~7e1: every bucket touched
  const std::vector<uint64_t> c = h.cumulative_counts();
  ASSERT_EQ(c.size(), 16u);
  for (size_t i = 1; i < c.size(); ++i) EXPECT_LE(c[i - 1], c[i]) << "bucket " << i;
  EXPECT_EQ(c.back(), 200u);
  EXPECT_GT(c.front(), 0u);
  EXPECT_LT(c[14], 200u) << "some values exceed 60 s";
}

TEST(Histogram, RejectsUnorderedOrInfiniteBounds) {
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
  EXPECT_THROW(Histogram({std::nan("")}), std::invalid_argument);
  EXPECT_NO_THROW(Histogram({}));  // only +Inf
}

TEST(ServerMetrics, NegativeTokenCountsAreRejected) {
  ServerMetrics m;
  EXPECT_THROW(m.tokens("tiny", -1, 0), std::invalid_argument);
  EXPECT_THROW(m.tokens("tiny", 0, -1), std::invalid_argument);
  EXPECT_THROW(m.tokens_by_member("tiny", "small", -5), std::invalid_argument);
  EXPECT_EQ(m.render().find("tokens_total"), std::string::npos) << "nothing half-recorded";
}

TEST(MetricsFormat, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escape_label_value("\\n"), "\\\\n") << "a literal backslash-n is not a newline";

  ServerMetrics m([] { return 0.0; });
  m.rejected("we\"ird\\mo\ndel", "timeout");
  EXPECT_NE(m.render().find(
                "slm_rejected_requests_total{model=\"we\\\"ird\\\\mo\\ndel\",reason=\"timeout\"} 1\n"),
            std::string::npos)
      << m.render();
}

TEST(MetricsFormat, FormatsNumbersAsTheTextFormatExpects) {
  EXPECT_EQ(format_metric_value(0.0025), "0.0025");
  EXPECT_EQ(format_metric_value(1.0), "1");
  EXPECT_EQ(format_metric_value(30.0), "30");
  EXPECT_EQ(format_metric_value(-2.5), "-2.5");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
}

TEST(ServerMetrics, DefaultClockGivesSmallNonNegativeUptime) {
  ServerMetrics m;
  const std::string text = m.render();
  const std::string prefix = "slm_uptime_seconds ";
  const size_t at = text.rfind(prefix);
  ASSERT_NE(at, std::string::npos) << text;
  const double uptime = std::stod(text.substr(at + prefix.size()));
  EXPECT_GE(uptime, 0.0);
  EXPECT_LT(uptime, 60.0);
}

TEST(ServerMetrics, ConcurrentUpdatesAreAllCounted) {
  ServerMetrics m([] { return 0.0; });
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kPerThread; ++i) {
        m.request_finished("tiny", "/v1/completions", 200, 0.5);  // exact, so the sum is exact
        m.tokens("tiny", 1, 2);
        m.inter_token_latency("tiny", 0.002);
        m.set_active_slots("tiny", t);
        if (i % 100 == 0) (void)m.render();  // readers interleave with writers
      }
    });
  }
  for (std::thread& th : threads) th.join();

  const std::string text = m.render();
  const int n = kThreads * kPerThread;  // 16000
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("slm_requests_total{model=\"tiny\",endpoint=\"/v1/completions\",status=\"200\"} " +
                  std::to_string(n)));
  EXPECT_TRUE(has("slm_prompt_tokens_total{model=\"tiny\"} " + std::to_string(n)));
  EXPECT_TRUE(has("slm_completion_tokens_total{model=\"tiny\"} " + std::to_string(2 * n)));
  EXPECT_TRUE(has("slm_request_duration_seconds_count{endpoint=\"/v1/completions\"} " +
                  std::to_string(n)));
  EXPECT_TRUE(has("slm_request_duration_seconds_sum{endpoint=\"/v1/completions\"} 8000"));
  EXPECT_TRUE(has("slm_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.25\"} 0"));
  EXPECT_TRUE(has("slm_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.5\"} " +
                  std::to_string(n)));
  EXPECT_TRUE(has("slm_inter_token_latency_seconds_bucket{model=\"tiny\",le=\"0.0025\"} " +
                  std::to_string(n)));
  EXPECT_TRUE(has("slm_inter_token_latency_seconds_count{model=\"tiny\"} " + std::to_string(n)));
  // The gauge holds whichever thread wrote last: one of 0..7.
  const std::string gauge = "slm_active_slots{model=\"tiny\"} ";
  const size_t at = text.find(gauge);
  ASSERT_NE(at, std::string::npos);
  const int last = std::stoi(text.substr(at + gauge.size()));
  EXPECT_GE(last, 0);
  EXPECT_LT(last, kThreads);
}

}  // namespace
}  // namespace slm
