// libFuzzer target: a checkpoint's manifest.json, as load_latest(), verify, inspect and
// export read it. Any bytes must give a Manifest or a cohort::Error; a crash, a sanitizer
// report, another exception or a hang is a bug. A manifest that is accepted must also
// write back to JSON that reads as the same manifest.
//
// By hand, with checkpoint/ and common/ compiled in so that the fuzzer sees their coverage:
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DOMPI_SKIP_MPICXX=1 \
//     -I. -Ibuild/common/generated -isystem /usr/include/hdf5/openmpi \
//     -isystem /usr/lib/x86_64-linux-gnu/openmpi/include \
//     tests/fuzz/checkpoint_manifest_fuzz.cpp checkpoint/{checkpointer,crc32c,internal,tools}.cpp \
//     common/{error,fd,json}.cpp -o checkpoint_manifest_fuzz \
//     -L/usr/lib/x86_64-linux-gnu/hdf5/openmpi -L/usr/lib/x86_64-linux-gnu/openmpi/lib -lhdf5 -lmpi
//   mkdir -p found && ./checkpoint_manifest_fuzz -max_total_time=60 found tests/fuzz/corpus/checkpoint_manifest
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "checkpoint/internal.hpp"
#include "common/error.hpp"
#include "common/json.hpp"

namespace {

using namespace cohort;
using namespace cohort::checkpoint;

bool same(const Manifest& a, const Manifest& b) {
  if (a.step != b.step || a.time != b.time || a.world_size != b.world_size || a.state_bytes != b.state_bytes ||
      a.tensors.size() != b.tensors.size() || a.metadata.epoch != b.metadata.epoch) {
    return false;
  }
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.sharding != y.sharding ||
        x.bytes != y.bytes || x.crc32c != y.crc32c || x.compressed != y.compressed) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Manifest manifest;
  try {
    manifest = detail::manifest_from_json(json::parse(text, "manifest.json"), "manifest.json");
  } catch (const Error&) {
    return 0;
  }
  (void)manifest.tensor_bytes();
  // Accepted once, accepted again, unchanged: what save writes is what load reads.
  const std::string written = json::write(detail::manifest_to_json(manifest), 2);
  Manifest again;
  try {
    again = detail::manifest_from_json(json::parse(written, "rewritten"), "rewritten");
  } catch (const Error&) {
    __builtin_trap();
  }
  if (!same(manifest, again)) __builtin_trap();
  return 0;
}
