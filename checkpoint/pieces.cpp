// Reading a tensor's rows from its pieces in the ranks' files (format version 2).
#include "checkpoint/pieces.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "checkpoint/collective_io.hpp"
#include "checkpoint/crc32c.hpp"
#include "checkpoint/dataset.hpp"

namespace cohort::checkpoint::detail {

namespace {

// Reads go to storage in requests of this size: large enough that the device sees long
// sequential runs, small enough that each block is still in cache when it is checksummed.
constexpr std::uint64_t kReadBytes = 8ull << 20;

}  // namespace

std::uint64_t stored_rows(const TensorInfo& info) { return info.shape.empty() ? 1 : info.shape[0]; }

std::uint64_t row_bytes(const TensorInfo& info) {
  const std::uint64_t rows = stored_rows(info);
  return rows == 0 ? 0 : info.bytes / rows;
}

TensorInfo piece_info(const TensorInfo& tensor, const Piece& piece) {
  TensorInfo out;
  out.name = tensor.name;
  out.dtype = tensor.dtype;
  out.shape = piece.shape;
  out.sharding = tensor.sharding;
  out.bytes = piece.bytes;
  out.crc32c = piece.crc32c;
  out.compressed = tensor.compressed;
  return out;
}

const RegularFile& PieceReader::open(const std::string& name) {
  auto it = files_.find(name);
  if (it != files_.end()) return it->second;
  const fs::path path = checkpoint_ / name;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) {
    throw Error(name + " is missing from " + checkpoint_.string() + " (the manifest lists it)");
  }
  RegularFile file = open_regular(path);
  // Advice only: the kernel may read further ahead of sequential reads.
  ::posix_fadvise(file.fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return files_.emplace(name, std::move(file)).first->second;
}

std::uint32_t PieceReader::read_raw(const Piece& piece, std::uint64_t at, std::uint64_t size, std::byte* out) {
  const RegularFile& file = open(piece.file);
  if (at > file.size || file.size - at < size) {
    throw Error(piece.file + " is " + std::to_string(file.size) + " bytes, too short for the piece at " +
                std::to_string(at) + " (truncated or overwritten)");
  }
  std::uint32_t crc = 0;
  for (std::uint64_t done = 0; done < size;) {
    const auto n = static_cast<size_t>(std::min(kReadBytes, size - done));
    std::uint64_t block = 0;
    while (block < n) {
      ssize_t got = ::pread(file.fd.get(), out + done + block, n - block, static_cast<off_t>(at + done + block));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error(system_message("read " + (checkpoint_ / piece.file).string(), errno));
      if (got == 0) throw Error(piece.file + " ends before the piece it should hold (truncated)");
      block += static_cast<std::uint64_t>(got);
    }
    crc = crc32c(crc, out + done, n);
    done += n;
  }
  return crc;
}

void PieceReader::read_compressed(const TensorInfo& tensor, const Piece& piece, std::uint64_t first,
                                  std::uint64_t count, std::byte* out) {
  open(piece.file);  // refuses what is not a regular file before HDF5 opens it
  H5Lock h5;
  const std::string path = (checkpoint_ / piece.file).string();
  auto file = h5_file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, local_file_access().get()), "open " + path);
  auto t = open_tensor(file.get(), piece_info(tensor, piece), piece.file);
  const std::string what = "tensor '" + tensor.name + "' in " + piece.file;
  std::vector<hsize_t> start(piece.shape.size(), 0), rows = to_hsize(piece.shape);
  start[0] = first;
  rows[0] = count;
  h5ok(H5Sselect_hyperslab(t.space.get(), H5S_SELECT_SET, start.data(), nullptr, rows.data(), nullptr), what);
  auto mem = h5_space(H5Screate_simple(static_cast<int>(rows.size()), rows.data(), nullptr), what);
  h5ok(H5Dread(t.dataset.get(), memory_type(tensor.dtype), mem.get(), t.space.get(), H5P_DEFAULT, out),
       "read " + what);
}

std::uint32_t PieceReader::read_rows(const TensorInfo& tensor, std::uint64_t first, std::uint64_t count,
                                     std::byte* out) {
  const std::uint64_t row = row_bytes(tensor);
  std::uint32_t crc = 0;
  for (const auto& piece : tensor.pieces) {
    const std::uint64_t piece_rows = piece.shape.empty() ? 1 : piece.shape[0];
    const std::uint64_t from = std::max(first, piece.row);
    const std::uint64_t to = std::min(first + count, piece.row + piece_rows);
    if (from >= to) continue;
    std::byte* dest = out + (from - first) * row;
    const std::uint64_t size = (to - from) * row;
    if (piece.offset) {
      crc = crc32c_combine(crc, read_raw(piece, *piece.offset + (from - piece.row) * row, size, dest), size);
    } else {
      read_compressed(tensor, piece, from - piece.row, to - from, dest);
      crc = crc32c(crc, dest, size);
    }
  }
  return crc;
}

}  // namespace cohort::checkpoint::detail
