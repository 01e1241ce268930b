// `cohort topo` as users meet it: tables, JSON, help, and errors with exit status 2.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>


#include "common/process.hpp"
#include "tests/topology/fixtures.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

using testing::fixture;

ProcessResult cohort(std::vector<std::string> args, std::vector<std::string> env = {}) {
  const char* bin = std::getenv("COHORT_BIN");
  args.insert(args.begin(), bin ? bin : "cohort");
  RunOptions options;
  options.env = std::move(env);
  return run_process(args, options);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// What the kernel says, not hwloc or cohort: GPU-class PCI functions (display controllers
// and NVIDIA/AMD processing accelerators from the GPU vendors), read from sysfs.
int gpus_the_kernel_lists() {
  int count = 0;
  std::error_code ec;
  for (const auto& dev : std::filesystem::directory_iterator("/sys/bus/pci/devices", ec)) {
    const unsigned long klass = std::stoul(first_line(dev.path() / "class"), nullptr, 16);
    const unsigned long vendor = std::stoul(first_line(dev.path() / "vendor"), nullptr, 16);
    const bool nvidia_or_amd = vendor == 0x10de || vendor == 0x1002;
    if (((klass >> 16) == 0x03 && (nvidia_or_amd || vendor == 0x8086)) || ((klass >> 8) == 0x1200 && nvidia_or_amd)) {
      ++count;
    }
  }
  return count;
}

// hwloc's PCI plugin leaks inside libpciaccess when it discovers this machine: under
// AddressSanitizer the command would fail on exit for it.
#if defined(__SANITIZE_ADDRESS__)
const std::vector<std::string> kThisMachineEnv{"COHORT_TOPOLOGY_XML=", "ASAN_OPTIONS=detect_leaks=0"};
#else
const std::vector<std::string> kThisMachineEnv{"COHORT_TOPOLOGY_XML="};
#endif

TEST(TopoCommand, ThisMachineGivesASummaryAndSaysWhenThereAreNoGpus) {
  auto r = cohort({"topo"}, kThisMachineEnv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "node: this machine\n")) << r.out;
  EXPECT_TRUE(has(r.out, "NUMA  PACKAGE  CORES  CPUS")) << r.out;
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_TRUE(has(r.out, " " + std::to_string(cpus) + (cpus == 1 ? " hardware thread " : " hardware threads ") +
                             "(CPUs " + first_line("/sys/devices/system/cpu/online")))
      << "the kernel has " << cpus << " CPUs online: " << r.out;
  if (gpus_the_kernel_lists() == 0) {
    EXPECT_TRUE(has(r.out, "GPUs: none")) << r.out;
  } else {
    EXPECT_TRUE(has(r.out, "GPU  VENDOR")) << r.out;
  }
  EXPECT_EQ(r.err, "");
}

TEST(TopoCommand, ShowsGpuAndNicTablesAndTheDistanceMatrix) {
  auto r = cohort({"topo", "--topology", fixture("dgx_a100_2s_8gpu_8ib.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "2 packages, 2 NUMA nodes, 16 cores, 32 hardware threads")) << r.out;
  EXPECT_TRUE(has(r.out, "\n4    nvidia  NVIDIA A100-SXM4-80GB  0000:92:00.0  cuda4,nvml4  1     8-15,24-31\n"))
      << r.out;
  EXPECT_TRUE(has(r.out, "\nmlx5_0  openfabrics  0000:13:00.0  1     ib0     31.5 GB/s  0     0-7,16-23\n"))
      << r.out;
  EXPECT_TRUE(has(r.out, "\nGPU0    X     NV12  NV12")) << r.out;
  EXPECT_TRUE(has(r.out, "Legend:")) << r.out;
}

TEST(TopoCommand, TopologyFileMayComeFromTheEnvironment) {
  auto r = cohort({"topo"}, {"COHORT_TOPOLOGY_XML=" + fixture("amd_mi250x_frontier.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "AMD Instinct MI250X")) << r.out;
  EXPECT_TRUE(has(r.out, "hsn3")) << r.out;
}

TEST(TopoCommand, JsonCarriesTheSameFields) {
  auto r = cohort({"topo", "--json", "--topology", fixture("one_socket_4gpu.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_TRUE(has(r.out, R"("gpus":[{"index":0,"runtime_index":0,"vendor":"nvidia","model":"NVIDIA L40S",)"))
      << r.out;
  EXPECT_TRUE(has(r.out, R"("name":"mlx5_0","kind":"openfabrics","pci":"0000:1a:00.0","netdevs":[],"port":1)"))
      << r.out;
  EXPECT_TRUE(has(r.out, R"("numa":[{"index":0,"package":0,"cpus":"0-15","memory_bytes":68719476736}])")) << r.out;
  EXPECT_TRUE(has(r.out, R"("distances":{"devices":["GPU0","GPU1","GPU2","GPU3","mlx5_0","eth0"],)")) << r.out;
  EXPECT_TRUE(has(r.out, R"(["X","PIX","PHB","PHB","PXB","PHB"])")) << r.out;
}

TEST(TopoCommand, PlanPrintsOneRowPerRank) {
  auto r = cohort({"topo", "plan", "--ranks", "8", "--topology", fixture("dgx_a100_2s_8gpu_8ib.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "RANK  GPUS  NICS    CPUS         NUMA  THREADS  REASON\n")) << r.out;
  EXPECT_TRUE(has(r.out, "\n7     7     mlx5_7  14-15,30-31  1     2        GPU 7 on NUMA 1;")) << r.out;
  EXPECT_FALSE(has(r.out, "rules not kept")) << r.out;
}

TEST(TopoCommand, PlanJsonIsAListWithTheDocumentedFields) {
  auto r = cohort({"topo", "plan", "--ranks", "2", "--gpus", "2,3", "--cpus", "4-7,20-23", "--json", "--topology",
                   fixture("dgx_a100_2s_8gpu_8ib.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(R"([{"local_rank":0,"gpus":[2],"nics":["mlx5_2"],"cpus":"4-5,20-21","numa":[0],"threads":2,"reason":")", 0),
            0u)
      << r.out;
  EXPECT_TRUE(has(r.out, R"({"local_rank":1,"gpus":[3],"nics":["mlx5_3"],"cpus":"6-7,22-23","numa":[0],"threads":2,)"))
      << r.out;
  EXPECT_TRUE(has(r.out, R"("broken":[]}])")) << r.out;
}

TEST(TopoCommand, PlanListsTheRulesItCouldNotKeep) {
  auto r = cohort({"topo", "plan", "--ranks", "16", "--topology", fixture("dgx_a100_2s_8gpu_8ib.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "\nrules not kept:\n  ranks 0-15: exclusive GPUs: 16 ranks share 8 GPUs (1 GPU per rank)\n"))
      << r.out;
}

TEST(TopoCommand, HelpShowsAnExampleAtEachLevel) {
  for (auto args : {std::vector<std::string>{"topo", "--help"}, std::vector<std::string>{"topo", "plan", "--help"},
                    std::vector<std::string>{"help", "topo"}}) {
    auto r = cohort(args);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_TRUE(has(r.out, "usage: cohort topo")) << r.out;
    EXPECT_TRUE(has(r.out, "example:")) << r.out;
  }
  EXPECT_TRUE(has(cohort({"help"}).out, "  topo ")) << "the command table lists topo";
}

void expect_usage_error(std::vector<std::string> args, const std::string& message) {
  auto r = cohort(std::move(args));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(r.err, "cohort: topo: " + message + "\n");
  EXPECT_EQ(r.out, "");
}

TEST(TopoCommand, BadInputExitsTwoNamingTheInput) {
  const std::string dgx = fixture("dgx_a100_2s_8gpu_8ib.xml");
  expect_usage_error({"topo", "plan", "--ranks", "2", "--gpus", "0,9", "--topology", dgx},
                     "--gpus 0,9: GPU 9 is not on this node (it has GPUs 0-7)");
  expect_usage_error({"topo", "plan", "--ranks", "0", "--topology", dgx}, "--ranks 0: must be 1..65536");
  expect_usage_error({"topo", "plan", "--ranks", "1", "--cpus", "0-64", "--topology", dgx},
                     "--cpus 0-64: CPUs 32-64 are not on this node (it has CPUs 0-31)");
  expect_usage_error({"topo", "plan", "--ranks", "1", "--gpus", "0-1", "--gpus-per-rank", "4", "--topology", dgx},
                     "--gpus-per-rank 4: only 2 GPUs are allowed (--gpus 0-1)");
  expect_usage_error({"topo", "plan", "--ranks", "1", "--nic", "closest", "--topology", dgx},
                     "--nic closest: must be 'nearest' or 'all'");
  expect_usage_error({"topo", "plan", "--topology", dgx}, "plan needs --ranks N (see 'cohort topo plan --help')");
  expect_usage_error({"topo", "--topology", "/nonexistent.xml"},
                     "/nonexistent.xml: cannot read the topology file: No such file or directory (write one "
                     "with `lstopo --of xml FILE`)");
  expect_usage_error({"topo", "--synthetic", "pack:2", "--topology", dgx},
                     "--topology and --synthetic both name a topology: give one");
}

TEST(TopoCommand, MalformedTopologyFileExitsTwo) {
  auto r = cohort({"topo", "--topology", fixture("../topo_command_test.cpp")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "topo_command_test.cpp: not an hwloc topology")) << r.err;
}

}  // namespace
}  // namespace cohort::topology
