// How ranks without MPI agree through files: every rank gets every rank's text in rank
// order, stale files of an earlier run are not mistaken for this one's, and a rank that
// never answers is named by the others once the deadline passes.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "checkpoint/agreement.hpp"
#include "common/error.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint::detail {
namespace {

using namespace std::chrono_literals;

// Runs `body(agreement)` for each of `ranks` ranks on threads of its own, as separate
// processes would; the results in rank order.
template <typename F>
auto on_ranks(const std::filesystem::path& dir, int ranks, std::chrono::milliseconds deadline, F body) {
  std::vector<std::future<decltype(body(std::declval<FileAgreement&>()))>> runs;
  for (int r = 0; r < ranks; ++r) {
    runs.push_back(std::async(std::launch::async, [=] {
      FileAgreement agreement(dir, r, ranks, deadline);
      return body(agreement);
    }));
  }
  std::vector<decltype(body(std::declval<FileAgreement&>()))> out;
  for (auto& run : runs) out.push_back(run.get());
  return out;
}

TEST(FileAgreement, EveryRankGetsEveryRanksTextInRankOrderExchangeAfterExchange) {
  testing::TempDir tmp;
  for (int run = 0; run < 2; ++run) {  // the second run meets the first one's files
    auto got = on_ranks(tmp / "a", 3, 30s, [](FileAgreement& a) {
      std::vector<std::vector<std::string>> all;
      for (int k = 0; k < 5; ++k) all.push_back(a.exchange("rank " + std::to_string(a.rank()) + " k" + std::to_string(k)));
      return all;
    });
    for (const auto& rank : got) {
      for (int k = 0; k < 5; ++k) {
        ASSERT_EQ(rank[static_cast<size_t>(k)],
                  (std::vector<std::string>{"rank 0 k" + std::to_string(k), "rank 1 k" + std::to_string(k),
                                            "rank 2 k" + std::to_string(k)}));
      }
    }
  }
}

TEST(FileAgreement, ARankThatNeverAnswersIsNamedByEveryOtherRank) {
  testing::TempDir tmp;
  auto got = on_ranks(tmp / "a", 3, 300ms, [](FileAgreement& a) -> std::string {
    a.exchange("joined");
    if (a.rank() == 2) return "stayed silent";
    try {
      a.exchange("second");
    } catch (const Error& e) {
      // Broken for good: a later exchange fails at once instead of falling out of step.
      EXPECT_THROW(a.exchange("third"), Error);
      return e.what();
    }
    return "no error";
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(got[static_cast<size_t>(r)].find("rank 2 did not answer"), std::string::npos) << got[static_cast<size_t>(r)];
  }
}

TEST(FileAgreement, ARankThatNeverStartsIsNamed) {
  testing::TempDir tmp;
  try {
    FileAgreement alone(tmp / "a", 0, 2, 200ms);
    FAIL() << "rank 0 joined without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 did not start a checkpointer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cohort::checkpoint::detail
