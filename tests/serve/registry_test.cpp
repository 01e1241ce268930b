// A service's registry as the job writes it and the commands read it: a requeued service
// keeps its count of requeues, and a registry written before that count was kept still reads.
#include <gtest/gtest.h>

#include "common/fd.hpp"
#include "serve/registry.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::serve {
namespace {

TEST(Registry, ARequeuedServiceReadsBackWithItsStateAndRequeueCount) {
  testing::TempDir dir;
  Registry r{.name = "mlp", .state = "requeued", .job = "42", .requeues = 3};
  r.traffic["2"] = 100;
  r.storage["2"] = "/models/mlp-v2";
  r.newest_version = 3;  // a canary of version 3 was rolled back
  write_registry(dir.path(), r);
  const Registry back = read_registry(dir.path());
  EXPECT_EQ(back.state, "requeued");
  EXPECT_EQ(back.job, "42");
  EXPECT_EQ(back.requeues, 3);
  EXPECT_EQ(back.url, "");
  EXPECT_EQ(back.traffic.at("2"), 100);
  EXPECT_EQ(back.newest_version, 3);
}

TEST(Registry, OneWrittenBeforeRequeuesWereCountedReadsAsNeverRequeued) {
  testing::TempDir dir;
  write_file_atomically(registry_path(dir.path()),
                        R"({"name": "mlp", "state": "ready", "job": "7", "url": "http://h:1/v2", "message": "",
                            "traffic": {"1": 100}, "storage": {"1": "/m"}, "replicas": []})");
  const Registry back = read_registry(dir.path());
  EXPECT_EQ(back.state, "ready");
  EXPECT_EQ(back.requeues, 0);
  EXPECT_EQ(back.newest_version, 0);
}

}  // namespace
}  // namespace cohort::serve
