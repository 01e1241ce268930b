// The node model: what hwloc XML, synthetic descriptions and this machine turn into.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <sstream>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "common/error.hpp"
#include "tests/topology/fixtures.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

using testing::all_fixtures;
using testing::fixture;
using testing::load;

std::string read(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

const Nic& nic_named(const Node& node, const std::string& name) {
  auto it = std::find_if(node.nics().begin(), node.nics().end(), [&](const Nic& n) { return n.name == name; });
  if (it == node.nics().end()) throw std::runtime_error("no NIC " + name);
  return *it;
}

int nic_index(const Node& node, const std::string& name) {
  return static_cast<int>(&nic_named(node, name) - node.nics().data());
}

// A small node written inline: a GPU that only its PCI class names (no driver loaded,
// so no OS device), an AWS EFA device, and a Slingshot interface without PCI.
constexpr const char* kEfaNode = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc2.dtd">
<topology version="2.0">
  <object type="Machine" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" allowed_cpuset="0x0000000f" nodeset="0x00000001" complete_nodeset="0x00000001" allowed_nodeset="0x00000001" gp_index="1">
    <object type="Package" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="2">
      <object type="NUMANode" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="3" local_memory="1073741824"/>
      <object type="Core" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="4">
        <object type="PU" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="5"/>
        <object type="PU" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="6"/>
      </object>
      <object type="Core" os_index="1" cpuset="0x0000000c" complete_cpuset="0x0000000c" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="7">
        <object type="PU" os_index="2" cpuset="0x00000004" complete_cpuset="0x00000004" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="8"/>
        <object type="PU" os_index="3" cpuset="0x00000008" complete_cpuset="0x00000008" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="9"/>
      </object>
      <object type="Bridge" gp_index="10" bridge_type="0-1" depth="0" bridge_pci="0000:[00-ff]">
        <object type="PCIDev" gp_index="11" pci_busid="0000:10:1c.0" pci_type="0302 [10de:1eb8] [10de:12a2] a1" pci_link_speed="7.877"/>
        <object type="PCIDev" gp_index="12" pci_busid="0000:10:1d.0" pci_type="0200 [1d0f:efa0] [1d0f:efa0] 00" pci_link_speed="0.000000">
          <object type="OSDev" gp_index="13" name="rdmap16s29" osdev_type="3">
            <info name="Port1State" value="4"/>
          </object>
        </object>
      </object>
      <object type="OSDev" gp_index="14" name="hsn0" osdev_type="2"/>
    </object>
  </object>
</topology>
)";

// Two NVIDIA GPUs: the first named by CUDA under its PCI function, the second by its PCI
// class only; OpenCL names both but hwloc could not tie its devices to PCI functions (as
// in a VM), so they hang off the machine.
constexpr const char* kUnplacedOpenClNode = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc2.dtd">
<topology version="2.0">
  <object type="Machine" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" allowed_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" allowed_nodeset="0x00000001" gp_index="1">
    <object type="Package" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="2">
      <object type="NUMANode" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="3" local_memory="1073741824"/>
      <object type="Core" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="4">
        <object type="PU" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="5"/>
        <object type="PU" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="6"/>
      </object>
      <object type="Bridge" gp_index="10" bridge_type="0-1" depth="0" bridge_pci="0000:[00-ff]">
        <object type="PCIDev" gp_index="11" pci_busid="0000:00:06.0" pci_type="0302 [10de:2335] [10de:18be] a1" pci_link_speed="0.000000">
          <object type="OSDev" gp_index="12" name="cuda0" subtype="CUDA" osdev_type="5"/>
        </object>
        <object type="PCIDev" gp_index="13" pci_busid="0000:00:07.0" pci_type="0302 [10de:2335] [10de:18be] a1" pci_link_speed="0.000000"/>
      </object>
    </object>
    <object type="OSDev" gp_index="14" name="opencl0d0" subtype="OpenCL" osdev_type="5">
      <info name="GPUVendor" value="NVIDIA Corporation"/>
      <info name="GPUModel" value="NVIDIA H200"/>
    </object>
    <object type="OSDev" gp_index="15" name="opencl0d1" subtype="OpenCL" osdev_type="5">
      <info name="GPUVendor" value="NVIDIA Corporation"/>
      <info name="GPUModel" value="NVIDIA H200"/>
    </object>
  </object>
</topology>
)";

TEST(Node, FixturesLoadWithHwlocsBuiltInXmlParserToo) {
  // Where hwloc's libxml2 plugin is not installed, its own parser reads the XML: it is
  // stricter about comments and blank lines, which the fixtures have.
  ::setenv("HWLOC_LIBXML_IMPORT", "0", 1);
  for (const auto& name : all_fixtures()) {
    EXPECT_NO_THROW(load(name)) << name;
  }
  EXPECT_EQ(Node::from_xml(kEfaNode).nics().size(), 2u);
  ::unsetenv("HWLOC_LIBXML_IMPORT");
}

TEST(Node, CountsPackagesNumaNodesCoresAndHardwareThreads) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  ASSERT_EQ(node.packages().size(), 2u);
  ASSERT_EQ(node.numa_nodes().size(), 2u);
  EXPECT_EQ(node.cores().size(), 16u);
  EXPECT_EQ(node.cpus().to_string(), "0-31");
  EXPECT_EQ(node.allowed_cpus(), node.cpus());
  EXPECT_EQ(node.packages()[1].cpus.to_string(), "8-15,24-31");
  EXPECT_EQ(node.packages()[1].numa, std::vector<int>{1});
  EXPECT_EQ(node.numa_nodes()[1].package, 1);
  EXPECT_EQ(node.numa_nodes()[1].memory_bytes, 549755813888u);
  EXPECT_EQ(node.cores()[0].pus.to_string(), "0,16");
  EXPECT_EQ(node.cores()[9].numa, 1);
  EXPECT_EQ(node.cores()[9].package, 1);
}

TEST(Node, SubNumaClustersAreNumaNodesWithinOnePackage) {
  Node node = load("two_socket_cpu_only.xml");
  ASSERT_EQ(node.numa_nodes().size(), 4u);
  EXPECT_EQ(node.packages()[0].numa, (std::vector<int>{0, 1}));
  EXPECT_EQ(node.numa_nodes()[3].package, 1);
  EXPECT_EQ(node.numa_nodes()[3].cpus.to_string(), "12-15,28-31");
  EXPECT_TRUE(node.gpus().empty());
}

TEST(Node, OneGpuPerPciFunctionHoweverManyRuntimesNameIt) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  ASSERT_EQ(node.gpus().size(), 8u);
  for (int i = 0; i < 8; ++i) {
    const Gpu& gpu = node.gpus()[static_cast<std::size_t>(i)];
    EXPECT_EQ(gpu.index, i);
    EXPECT_EQ(gpu.runtime_index, i);
    EXPECT_EQ(gpu.vendor, GpuVendor::nvidia);
    EXPECT_EQ(gpu.model, "NVIDIA A100-SXM4-80GB");
    EXPECT_EQ(gpu.os_devices, (std::vector<std::string>{"cuda" + std::to_string(i), "nvml" + std::to_string(i)}));
  }
  EXPECT_EQ(node.gpus()[4].pci_bus_id, "0000:92:00.0");
}

TEST(Node, BmcDisplayIsNotAGpu) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  for (const auto& gpu : node.gpus()) EXPECT_NE(gpu.pci_bus_id, "0000:70:00.0");
}

TEST(Node, GpusCarryCpusNumaPackageAndPciePath) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  const Locality& loc = node.gpus()[5].locality;
  EXPECT_EQ(loc.cpus.to_string(), "8-15,24-31");
  EXPECT_EQ(loc.numa, std::vector<int>{1});
  EXPECT_EQ(loc.package, 1);
  ASSERT_EQ(loc.pci_path.size(), 4u);
  EXPECT_EQ(loc.pci_path[0], "HostBridge 0000:[80-ff]");
  EXPECT_EQ(loc.pci_path[3], "PCIBridge 0000:a1:00.0");
}

TEST(Node, AmdGpusAreNumberedAsRocmNumbersThem) {
  Node node = load("amd_mi250x_frontier.xml");
  ASSERT_EQ(node.gpus().size(), 8u);
  const std::vector<int> numa_of_gpu{3, 3, 1, 1, 0, 0, 2, 2};
  for (std::size_t i = 0; i < 8; ++i) {
    const Gpu& gpu = node.gpus()[i];
    EXPECT_EQ(gpu.vendor, GpuVendor::amd);
    EXPECT_EQ(gpu.model, "AMD Instinct MI250X");
    EXPECT_EQ(gpu.os_devices.front(), "rsmi" + std::to_string(i));
    EXPECT_EQ(gpu.locality.numa, std::vector<int>{numa_of_gpu[i]}) << "GPU " << i;
  }
}

TEST(Node, GpuWithoutAnOsDeviceIsFoundByItsPciClass) {
  Node node = Node::from_xml(kEfaNode);
  ASSERT_EQ(node.gpus().size(), 1u);
  EXPECT_EQ(node.gpus()[0].vendor, GpuVendor::nvidia);
  EXPECT_EQ(node.gpus()[0].pci_bus_id, "0000:10:1c.0");
  EXPECT_TRUE(node.gpus()[0].os_devices.empty());
}

TEST(Node, RuntimeDevicesWithoutAPciFunctionJoinThePciGpusTheyName) {
  Node node = Node::from_xml(kUnplacedOpenClNode);
  ASSERT_EQ(node.gpus().size(), 2u);
  EXPECT_EQ(node.gpus()[0].pci_bus_id, "0000:00:06.0");
  EXPECT_EQ(node.gpus()[0].os_devices, (std::vector<std::string>{"cuda0", "opencl0d0"}));
  EXPECT_EQ(node.gpus()[1].pci_bus_id, "0000:00:07.0");
  EXPECT_EQ(node.gpus()[1].os_devices, std::vector<std::string>{"opencl0d1"});
  EXPECT_EQ(node.gpus()[1].model, "NVIDIA H200");
  EXPECT_EQ(node.gpus()[1].locality.cpus.to_string(), "0-1");
}

TEST(Node, NicsKnowTheirKindPortNetdevsAndLocality) {
  Node dgx = load("dgx_a100_2s_8gpu_8ib.xml");
  EXPECT_EQ(dgx.nics().size(), 9u);
  const Nic& ib = nic_named(dgx, "mlx5_5");
  EXPECT_EQ(ib.kind, NicKind::openfabrics);
  EXPECT_EQ(ib.netdevs, std::vector<std::string>{"ib5"});
  EXPECT_EQ(ib.port, 1);
  EXPECT_EQ(ib.pci_bus_id, "0000:a3:00.0");
  EXPECT_DOUBLE_EQ(ib.pci_link_gbytes, 31.5);
  EXPECT_EQ(ib.locality.numa, std::vector<int>{1});
  EXPECT_EQ(nic_named(dgx, "eno1").kind, NicKind::ethernet);

  Node amd = load("amd_mi250x_frontier.xml");
  ASSERT_EQ(amd.nics().size(), 4u);
  EXPECT_EQ(nic_named(amd, "hsn2").kind, NicKind::slingshot);
  EXPECT_EQ(nic_named(amd, "hsn2").locality.numa, std::vector<int>{2});

  Node efa = Node::from_xml(kEfaNode);
  EXPECT_EQ(nic_named(efa, "rdmap16s29").kind, NicKind::efa);
  EXPECT_EQ(nic_named(efa, "rdmap16s29").port, 1);
  EXPECT_EQ(nic_named(efa, "hsn0").kind, NicKind::slingshot);
  EXPECT_TRUE(nic_named(efa, "hsn0").pci_bus_id.empty());
}

TEST(Distances, FollowNvidiaSmiClasses) {
  Node dgx = load("dgx_a100_2s_8gpu_8ib.xml");
  EXPECT_EQ(dgx.gpu_to_gpu(0, 0).to_string(), "X");
  EXPECT_EQ(dgx.gpu_to_gpu(0, 7).to_string(), "NV12");  // through the NVSwitches
  EXPECT_EQ(dgx.gpu_to_nic(0, nic_index(dgx, "mlx5_0")).to_string(), "PIX");
  EXPECT_EQ(dgx.gpu_to_nic(0, nic_index(dgx, "mlx5_1")).to_string(), "PHB");
  EXPECT_EQ(dgx.gpu_to_nic(0, nic_index(dgx, "mlx5_4")).to_string(), "SYS");
  EXPECT_EQ(dgx.nic_to_nic(nic_index(dgx, "mlx5_0"), nic_index(dgx, "mlx5_0")).to_string(), "X");

  Node one = load("one_socket_4gpu.xml");
  EXPECT_EQ(one.gpu_to_gpu(0, 1).to_string(), "PIX");
  EXPECT_EQ(one.gpu_to_gpu(0, 2).to_string(), "PHB");
  EXPECT_EQ(one.gpu_to_nic(1, nic_index(one, "mlx5_0")).to_string(), "PXB");  // nested switch
  EXPECT_EQ(one.gpu_to_nic(2, nic_index(one, "mlx5_0")).to_string(), "PHB");

  Node bridged = load("gpus_on_one_socket.xml");
  EXPECT_EQ(bridged.gpu_to_gpu(0, 2).to_string(), "NV4");  // a direct NVLink bridge
  EXPECT_EQ(bridged.gpu_to_gpu(0, 1).to_string(), "PHB");
  EXPECT_EQ(bridged.gpu_to_nic(3, nic_index(bridged, "mlx5_1")).to_string(), "SYS");

  Node amd = load("amd_mi250x_frontier.xml");
  EXPECT_EQ(amd.gpu_to_gpu(4, 5).to_string(), "PIX");
  EXPECT_EQ(amd.gpu_to_gpu(4, 2).to_string(), "NODE");  // other host bridge, same package
}

TEST(Distances, AreSymmetricAndSelfIsX) {
  for (const auto& name : all_fixtures()) {
    Node node = load(name);
    const int g = static_cast<int>(node.gpus().size());
    const int n = static_cast<int>(node.nics().size());
    for (int a = 0; a < g; ++a) {
      EXPECT_EQ(node.gpu_to_gpu(a, a).cls, LinkClass::self) << name;
      for (int b = 0; b < g; ++b) EXPECT_EQ(node.gpu_to_gpu(a, b), node.gpu_to_gpu(b, a)) << name;
    }
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) EXPECT_EQ(node.nic_to_nic(a, b), node.nic_to_nic(b, a)) << name;
    }
  }
}

TEST(Distances, OrderNearestFirst) {
  EXPECT_LT((Link{LinkClass::nvlink, 12}), (Link{LinkClass::nvlink, 4}));
  EXPECT_LT((Link{LinkClass::nvlink, 1}), (Link{LinkClass::pix, 0}));
  EXPECT_LT((Link{LinkClass::pix, 0}), (Link{LinkClass::pxb, 0}));
  EXPECT_LT((Link{LinkClass::phb, 0}), (Link{LinkClass::node, 0}));
  EXPECT_LT((Link{LinkClass::node, 0}), (Link{LinkClass::sys, 0}));
}

TEST(Node, SyntheticDescriptionGivesACpuOnlyNode) {
  Node node = Node::from_synthetic("pack:2 core:4 pu:2");
  EXPECT_EQ(node.packages().size(), 2u);
  EXPECT_EQ(node.cores().size(), 8u);
  EXPECT_EQ(node.cpus().count(), 16);
  EXPECT_TRUE(node.gpus().empty());
  EXPECT_TRUE(node.nics().empty());
  EXPECT_EQ(node.cores()[0].pus.count(), 2);
}

TEST(Node, ThisMachineLoadsWithCoresAndAllowedCpus) {
#if defined(__SANITIZE_ADDRESS__)
  // hwloc's PCI plugin leaks about 1 KiB per discovery inside libpciaccess, and is
  // unloaded before LeakSanitizer could name it in a suppression.
  __lsan::ScopedDisabler third_party_leaks;
#endif
  Node node = Node::from_this_machine();
  EXPECT_EQ(node.source(), "this machine");
  EXPECT_FALSE(node.cores().empty());
  EXPECT_FALSE(node.allowed_cpus().empty());
  EXPECT_TRUE(node.allowed_cpus().is_subset_of(node.cpus()));
  for (const auto& gpu : node.gpus()) EXPECT_FALSE(gpu.locality.cpus.empty());
}

TEST(Node, LoadsFromManyThreadsAtOnce) {
  const std::string xml = read(fixture("dgx_a100_2s_8gpu_8ib.xml"));
  std::vector<std::future<Node>> loads;
  for (int i = 0; i < 4; ++i) {
    loads.push_back(std::async(std::launch::async, [&] { return Node::from_xml(xml); }));
  }
  for (auto& f : loads) {
    Node node = f.get();
    ASSERT_EQ(node.gpus().size(), 8u);
    EXPECT_EQ(node.gpus()[7].pci_bus_id, "0000:c2:00.0");
    EXPECT_EQ(node.gpu_to_nic(7, 8).to_string(), "PIX");  // mlx5_7: eno1 sorts before it
  }
}

void expect_input_error(const std::function<void()>& load, const std::string& starts_with) {
  try {
    load();
    ADD_FAILURE() << "no error, expected one starting with " << starts_with;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_EQ(std::string(e.what()).rfind(starts_with, 0), 0u) << e.what();
  }
}

TEST(Node, UnreadableFileIsAnInputErrorNamingIt) {
  expect_input_error([] { Node::from_xml_file("/nonexistent/node.xml"); },
                     "/nonexistent/node.xml: cannot read the topology file: No such file");
}

TEST(Node, MalformedXmlIsAnInputErrorNamingIt) {
  const std::string xml = read(fixture("one_socket_4gpu.xml"));
  expect_input_error([&] { Node::from_xml(xml.substr(0, xml.size() / 2), "half.xml"); },
                     "half.xml: not an hwloc topology");
  expect_input_error([] { Node::from_xml("<html><body/></html>", "page.xml"); },
                     "page.xml: not an hwloc topology");
  expect_input_error([] { Node::from_xml("", "empty.xml"); }, "empty.xml: not an hwloc topology");
}

TEST(Node, ObjectWithoutItsCompleteSetsIsAnInputErrorNotACrash) {
  std::string xml = read(fixture("one_socket_4gpu.xml"));
  const std::size_t core = xml.find("<object type=\"Core\"");
  const std::size_t at = xml.find(" complete_cpuset=\"", core);
  xml.erase(at, xml.find('"', xml.find('"', at) + 1) - at + 1);
  const auto line = 1 + std::count(xml.begin(), xml.begin() + static_cast<std::ptrdiff_t>(core), '\n');
  expect_input_error([&] { Node::from_xml(xml, "hand.xml"); },
                     "hand.xml:" + std::to_string(line) + ": object has a cpuset but no complete_cpuset, which hwloc needs");
}

TEST(Node, BadSyntheticDescriptionIsAnInputError) {
  expect_input_error([] { Node::from_synthetic("pack:two"); }, "synthetic topology 'pack:two'");
}

}  // namespace
}  // namespace cohort::topology
