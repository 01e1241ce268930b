#include "checkpoint/lineage_record.hpp"

#include <cstdio>
#include <iostream>

#include "checkpoint/crc32c.hpp"
#include "checkpoint/layout.hpp"
#include "common/fd.hpp"
#include "lineage/record.hpp"

namespace cohort::checkpoint::detail {

void record_lineage(const std::filesystem::path& path, std::int64_t step) noexcept {
  lineage::CheckpointCommit commit;
  try {
    const std::string manifest = read_text(path / kManifestFile);
    char digest[32];
    std::snprintf(digest, sizeof digest, "crc32c:%08x", crc32c(0, manifest.data(), manifest.size()));
    commit = {.path = std::filesystem::absolute(path).lexically_normal().string(), .step = step, .digest = digest};
  } catch (const std::exception& e) {
    std::cerr << "cohort: lineage: step " << step << " was not recorded: " << e.what() << "\n";
    return;
  }
  lineage::record_checkpoint(commit);
}

}  // namespace cohort::checkpoint::detail
