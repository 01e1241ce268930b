// The V2 JSON layer, the datatypes and the model repository's reader, without a server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/json.hpp"
#include "serve/protocol.hpp"
#include "serve/repository.hpp"
#include "serve/runtime.hpp"
#include "serve/tensor.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::serve {
namespace {

ModelConfig mlp_config() {
  return read_config("max_batch_size: 8\n"
                     "inputs: [{name: x, datatype: FP32, dims: [4]}]\n"
                     "outputs: [{name: y, datatype: FP32, dims: [2]}, {name: z, datatype: INT64, dims: [-1]}]\n",
                     "mlp/config.yaml", "mlp");
}

int status_of(const std::string& body, const ModelConfig& config) {
  try {
    read_infer_request(json::parse(body), config);
  } catch (const HttpError& e) {
    return e.status();
  }
  return 200;
}

std::string error_of(const std::string& body, const ModelConfig& config) {
  try {
    read_infer_request(json::parse(body), config);
  } catch (const HttpError& e) {
    return e.what();
  }
  return "";
}

std::string config_error(const std::string& text) {
  try {
    read_config(text, "repo/m/config.yaml", "m");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "";
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(Datatypes, EveryV2NameMapsToOneDTypeAndBack) {
  for (auto name : {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16",
                    "FP32", "FP64"}) {
    auto dtype = find_datatype(name);
    ASSERT_TRUE(dtype) << name;
    EXPECT_EQ(datatype_name(*dtype), name);
  }
  EXPECT_EQ(find_datatype("FP32"), DType::float32);
  EXPECT_EQ(find_datatype("BOOL"), DType::bool8);
  EXPECT_FALSE(find_datatype("BYTES"));
  EXPECT_FALSE(find_datatype("fp32"));
}

TEST(Datatypes, HalfAndBfloat16RoundToNearestEven) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f}) {
    EXPECT_EQ(from_half(to_half(v)), v) << v;
  }
  EXPECT_EQ(to_half(1.0f), 0x3c00);
  EXPECT_EQ(to_half(1e6f), 0x7c00);  // past the largest half: infinity
  EXPECT_EQ(to_half(1.0f + 1.0f / 2048), 0x3c00);  // a tie rounds to the even neighbour
  EXPECT_EQ(to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(from_bfloat16(to_bfloat16(-3.0f)), -3.0f);
}

TEST(Shapes, BatchLeadsAndVariableDimensionsMatchAnySize) {
  TensorSpec spec{"x", DType::float32, {-1, 3}};
  EXPECT_FALSE(shape_mismatch(spec, {2, 7, 3}, 8));
  EXPECT_EQ(*shape_mismatch(spec, {9, 7, 3}, 8), "batch 9 is not 1..8");
  EXPECT_EQ(*shape_mismatch(spec, {2, 7, 4}, 8), "shape [2, 7, 4] does not match [-1, -1, 3]");
  EXPECT_FALSE(shape_mismatch(spec, {7, 3}, 0));
  EXPECT_TRUE(shape_mismatch(spec, {7}, 0));
}

TEST(InferRequest, ReadsFlatAndNestedDataInTheConfigsOrder) {
  const auto config = mlp_config();
  auto flat = read_infer_request(
      json::parse(R"({"id": "a", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                      "data": [1, 2.5, -3, 4]}], "outputs": [{"name": "z"}]})"),
      config);
  auto nested = read_infer_request(
      json::parse(R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2.5, -3, 4]]}]})"),
      config);
  ASSERT_EQ(flat.inputs.size(), 1u);
  EXPECT_EQ(flat.inputs[0].data, nested.inputs[0].data);
  float values[4];
  std::memcpy(values, flat.inputs[0].data.data(), sizeof values);
  EXPECT_EQ(values[1], 2.5f);
  EXPECT_EQ(flat.id, json::Value("a"));
  EXPECT_EQ(flat.outputs, std::vector<std::string>{"z"});
}

TEST(InferRequest, WrongRequestsAre400NamingTheInput) {
  const auto config = mlp_config();
  EXPECT_EQ(status_of(R"({"inputs": []})", config), 400);
  EXPECT_EQ(error_of(R"({"inputs": []})", config), "input 'x' is missing");
  EXPECT_EQ(error_of(R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]})", config),
            "input 'x': datatype FP64 is not the model's FP32");
  EXPECT_EQ(error_of(R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]})", config),
            "input 'x': data has 3 element(s); shape [1, 4] needs 4");
  EXPECT_EQ(status_of(R"({"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP32", "data": []}]})", config), 400);
  EXPECT_EQ(status_of(R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, true]}]})",
                      config),
            400);
  EXPECT_EQ(status_of(R"({"id": 7, "inputs": []})", config), 400);
  EXPECT_EQ(status_of(R"([])", config), 400);
}

TEST(InferRequest, IntegersOutOfTheirTypesRangeAre400) {
  auto config = read_config("inputs: [{name: b, datatype: UINT8, dims: [-1]}]\n"
                            "outputs: [{name: o, datatype: UINT8, dims: [-1]}]\n",
                            "c.yaml", "c");
  EXPECT_EQ(status_of(R"({"inputs": [{"name": "b", "shape": [2], "datatype": "UINT8", "data": [0, 255]}]})", config), 200);
  EXPECT_EQ(error_of(R"({"inputs": [{"name": "b", "shape": [1], "datatype": "UINT8", "data": [256]}]})", config),
            "input 'b': data[0]: 256 is out of range for the datatype");
  EXPECT_EQ(status_of(R"({"inputs": [{"name": "b", "shape": [1], "datatype": "UINT8", "data": [1.5]}]})", config), 400);
}

TEST(InferResponse, EchoesTheIdAndKeepsOnlyTheOutputsAskedFor) {
  InferRequest request;
  request.id = "r1";
  request.outputs = {"z"};
  Tensor y{"y", DType::float32, {1}, std::vector<std::byte>(4)};
  Tensor z{"z", DType::int64, {1}, std::vector<std::byte>(8)};
  const auto out = json::write(infer_response("mlp", 3, request, {y, z}));
  EXPECT_EQ(out, R"({"model_name":"mlp","model_version":"3","id":"r1","outputs":[{"name":"z","datatype":"INT64",)"
                 R"("shape":[1],"data":[0]}]})");
}

TEST(Config, ErrorsNameTheFileAndTheField) {
  EXPECT_EQ(config_error("inputs: [{name: x, datatype: FLOAT, dims: [1]}]"),
            "repo/m/config.yaml: inputs[0].datatype: datatype 'FLOAT' is not one of BOOL, UINT8, UINT16, UINT32, "
            "UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64");
  EXPECT_NE(config_error("inputs: [{name: x, datatype: FP32, dims: [0]}]").find("inputs[0].dims[0]: must be positive"),
            std::string::npos);
  EXPECT_NE(config_error("max_batch_size: -1").find("max_batch_size"), std::string::npos);
  EXPECT_NE(config_error("dynamic_batching: {max_queue_delay_us: 10}").find("needs max_batch_size above 0"),
            std::string::npos);
  EXPECT_NE(config_error("name: other").find("'other' is not the model's folder name 'm'"), std::string::npos);
  EXPECT_NE(config_error("input: []").find("input"), std::string::npos);
  EXPECT_NE(config_error("version_policy: {latest: 0}").find("version_policy.latest"), std::string::npos);
  EXPECT_NE(config_error("[1, 2]").find("repo/m/config.yaml"), std::string::npos);
}

TEST(Config, ReadsBatchingInstancesAndPolicy) {
  auto c = read_config("max_batch_size: 16\n"
                       "dynamic_batching: {max_queue_delay_us: 100, preferred_batch_sizes: [4, 8], max_queue_size: 64}\n"
                       "instances: 2\n"
                       "version_policy: {specific: [1, 3]}\n",
                       "c.yaml", "c");
  EXPECT_EQ(c.max_batch_size, 16);
  ASSERT_TRUE(c.dynamic_batching);
  EXPECT_EQ(c.dynamic_batching->max_queue_delay_us, 100);
  EXPECT_EQ(c.dynamic_batching->preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(c.dynamic_batching->max_queue_size, 64);
  EXPECT_EQ(c.instances, 2);
  EXPECT_EQ(c.version_policy.kind, VersionPolicy::Kind::specific);
}

TEST(Repository, ServesTheLatestVersionUnlessThePolicySaysOtherwise) {
  testing::TempDir repo;
  for (auto v : {"1", "2", "10"}) write(repo / "m" / v / "model.pt", "");
  write(repo / "m" / "notes" / "model.pt", "");
  write(repo / "all" / "config.yaml", "version_policy: all\n");
  for (auto v : {"1", "2"}) write(repo / "all" / v / "model.pt", "");
  auto models = read_repository(repo.path(), {});
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].config.name, "all");
  EXPECT_EQ(models[0].versions.size(), 2u);
  ASSERT_EQ(models[1].versions.size(), 1u);
  EXPECT_EQ(models[1].versions[0].version, 10);
  EXPECT_EQ(read_repository(repo.path(), {"m"}).size(), 1u);
  EXPECT_THROW(read_repository(repo.path(), {"nope"}), Error);
}

TEST(Repository, AModelWithoutAVersionIsAnInputErrorSayingWhatToAdd) {
  testing::TempDir repo;
  write(repo / "m" / "config.yaml", "");
  try {
    read_repository(repo.path(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("m/1/model.pt"), std::string::npos) << e.what();
  }
}

TEST(SingleModel, NeedsNameEqualsAnExistingFile) {
  testing::TempDir dir;
  write(dir / "m.pt", "");
  EXPECT_EQ(single_model("mlp=" + (dir / "m.pt").string()).config.name, "mlp");
  EXPECT_THROW(single_model("mlp"), Error);
  EXPECT_THROW(single_model("mlp=" + (dir / "none.pt").string()), Error);
  EXPECT_THROW(single_model("bad/name=" + (dir / "m.pt").string()), Error);
}

TEST(Placement, ThreadsFollowCohortCpusThenOmpNumThreads) {
  ::setenv("COHORT_CPUS", "0-3,8", 1);
  EXPECT_EQ(placement_threads(1), 5);
  ::unsetenv("COHORT_CPUS");
  ::setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(placement_threads(1), 3);
  ::unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(placement_threads(2), 2);
}

}  // namespace
}  // namespace cohort::serve
