// Fuzzing Slurm hostlists and task counts (launcher/hostlist.hpp): whatever the text, an
// expression expands within the limit or is an input error, and compressing what it
// expands to reads back as the same names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "launcher/hostlist.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<std::string> hosts = launcher::expand_hostlist(text);
    if (hosts.size() > 65536) std::abort();
    const std::string compressed = launcher::compress_hostlist(hosts);
    if (launcher::expand_hostlist(compressed) != hosts) std::abort();
  } catch (const Error&) {
  }
  try {
    const std::vector<int> counts = launcher::expand_tasks_per_node(text);
    for (int c : counts) {
      if (c < 0) std::abort();
    }
  } catch (const Error&) {
  }
  return 0;
}
