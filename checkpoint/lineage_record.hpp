// checkpoint/lineage_record.hpp — private to checkpoint/: what a committed step tells the
// lineage store (lineage/record.hpp).
#pragma once

#include <cstdint>
#include <filesystem>

namespace cohort::checkpoint::detail {

// Records the committed step directory `path` as a Checkpoint, its digest the CRC32C of its
// manifest (which holds every tensor's checksum). Never throws.
void record_lineage(const std::filesystem::path& path, std::int64_t step) noexcept;

}  // namespace cohort::checkpoint::detail
