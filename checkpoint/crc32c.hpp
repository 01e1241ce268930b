// checkpoint/crc32c.hpp — CRC32C (Castagnoli), the checksum stored per tensor.
//
// Chosen over xxHash because it can be combined: the checksum of a tensor sharded over
// ranks is assembled from the ranks' partial checksums without moving any data, so it does
// not depend on how many ranks wrote or read it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::checkpoint {

// Extends `crc` (0 to start) over `size` bytes. Uses the SSE4.2 instruction when the CPU
// has it and a table otherwise; both give the same value.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size);

// The checksum of A followed by B, from crc(A), crc(B) and B's length.
std::uint32_t crc32c_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t size_b);

}  // namespace cohort::checkpoint
