// checkpoint/pieces.hpp — private to checkpoint/: reading a tensor's rows from the pieces
// that format version 2 keeps in the ranks' files, by the offsets the manifest records,
// without HDF5 in the way for uncompressed pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

// A tensor's rows: how many it has (1 for a scalar) and the bytes of each.
std::uint64_t stored_rows(const TensorInfo& info);
std::uint64_t row_bytes(const TensorInfo& info);

// A piece as a tensor of its own, for HDF5's checks of the dataset that stores it.
TensorInfo piece_info(const TensorInfo& tensor, const Piece& piece);

// Reads from the files of one checkpoint, keeping each open once opened.
class PieceReader {
 public:
  explicit PieceReader(fs::path checkpoint) : checkpoint_(std::move(checkpoint)) {}

  // Reads rows [first, first + count) of `tensor` into `out` and returns the CRC32C of
  // those bytes, computed block by block while each is in cache. Uncompressed pieces are
  // read with large sequential reads at the manifest's offsets; compressed ones through
  // HDF5. Throws cohort::Error naming the file on a missing or short file.
  std::uint32_t read_rows(const TensorInfo& tensor, std::uint64_t first, std::uint64_t count, std::byte* out);

 private:
  std::uint32_t read_raw(const Piece& piece, std::uint64_t at, std::uint64_t size, std::byte* out);
  void read_compressed(const TensorInfo& tensor, const Piece& piece, std::uint64_t first, std::uint64_t count,
                       std::byte* out);
  const RegularFile& open(const std::string& name);

  fs::path checkpoint_;
  std::map<std::string, RegularFile> files_;
};

}  // namespace cohort::checkpoint::detail
