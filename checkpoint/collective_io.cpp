#include "checkpoint/collective_io.hpp"

#include <algorithm>

#include "checkpoint/crc32c.hpp"

namespace cohort::checkpoint::detail {

std::vector<std::int64_t> broadcast_steps(const Group& group, const std::vector<std::int64_t>& steps) {
  std::string text;
  for (auto s : steps) text += std::to_string(s) + " ";
  text = group.broadcast(text);
  std::vector<std::int64_t> out;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find(' ', pos);
    out.push_back(std::stoll(text.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

RowLayout layout_rows(const Group& group, const std::vector<std::uint64_t>& rows) {
  size_t n = rows.size();
  std::vector<std::uint64_t> all(n * static_cast<size_t>(group.size()));
  if (group.mpi() && n > 0) {
    MPI_Allgather(rows.data(), static_cast<int>(n), MPI_UINT64_T, all.data(), static_cast<int>(n), MPI_UINT64_T,
                  group.comm());
  } else {
    std::copy(rows.begin(), rows.end(), all.begin());
  }
  RowLayout out{std::vector<std::uint64_t>(n, 0), std::vector<std::uint64_t>(n, 0)};
  for (size_t t = 0; t < n; ++t) {
    for (int r = 0; r < group.size(); ++r) {
      std::uint64_t here = all[static_cast<size_t>(r) * n + t];
      if (r < group.rank()) out.first_row[t] += here;
      out.total[t] += here;
    }
  }
  return out;
}

// Combines each rank's checksum of its rows, in rank order, into the whole tensor's.
std::vector<std::uint32_t> combine_crcs(const Group& group, const std::vector<std::uint32_t>& crcs,
                                        const std::vector<std::uint64_t>& lengths) {
  size_t n = crcs.size();
  if (!group.mpi() || group.size() == 1) return crcs;
  std::vector<std::uint32_t> all_crcs(n * static_cast<size_t>(group.size()));
  std::vector<std::uint64_t> all_lengths(n * static_cast<size_t>(group.size()));
  if (n > 0) {
    MPI_Allgather(crcs.data(), static_cast<int>(n), MPI_UINT32_T, all_crcs.data(), static_cast<int>(n),
                  MPI_UINT32_T, group.comm());
    MPI_Allgather(lengths.data(), static_cast<int>(n), MPI_UINT64_T, all_lengths.data(), static_cast<int>(n),
                  MPI_UINT64_T, group.comm());
  }
  std::vector<std::uint32_t> out(n, 0);
  for (size_t t = 0; t < n; ++t) {
    std::uint32_t crc = 0;
    for (int r = 0; r < group.size(); ++r) {
      size_t i = static_cast<size_t>(r) * n + t;
      crc = crc32c_combine(crc, all_crcs[i], all_lengths[i]);
    }
    out[t] = crc;
  }
  return out;
}

H5Handle local_file_access(bool writing) {
  auto fapl = h5_plist(H5Pcreate(H5P_FILE_ACCESS), "file access properties");
  if (writing) {
    // Tensor data goes to the file in H5Dwrite, where a full disk is an error HDF5
    // recovers from, rather than from a buffer flushed when a dataset closes; and closing
    // the file closes whatever an error path left open in it.
    h5ok(H5Pset_sieve_buf_size(fapl.get(), 0), "no sieve buffer");
    h5ok(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "close degree");
  }
  // Large datasets start on 1 MiB boundaries, which parallel file systems stripe on and
  // which keep every request of a load aligned to the file system's blocks.
  h5ok(H5Pset_alignment(fapl.get(), 1 << 20, 1 << 20), "alignment");
  return fapl;
}

H5Handle file_access(const Group& group, bool writing) {
  if (group.size() == 1) return local_file_access(writing);
  auto fapl = h5_plist(H5Pcreate(H5P_FILE_ACCESS), "file access properties");
  h5ok(H5Pset_fapl_mpio(fapl.get(), group.comm(), MPI_INFO_NULL), "MPI-IO file driver");
  // Rank 0 reads metadata and broadcasts it rather than every rank hitting the file.
  h5ok(H5Pset_all_coll_metadata_ops(fapl.get(), true), "collective metadata reads");
  h5ok(H5Pset_coll_metadata_write(fapl.get(), true), "collective metadata writes");
  h5ok(H5Pset_alignment(fapl.get(), 1 << 20, 1 << 20), "alignment");
  return fapl;
}

// Each rank's part of a tensor is one contiguous range of the file (its rows), so
// independent I/O writes and reads it directly; collective I/O would shuffle the data
// through aggregator ranks first. Compressed (chunked, filtered) datasets need collective
// transfers in parallel HDF5.
H5Handle transfer(const Group& group, bool collective) {
  auto dxpl = h5_plist(H5Pcreate(H5P_DATASET_XFER), "transfer properties");
  if (group.size() > 1) {
    h5ok(H5Pset_dxpl_mpio(dxpl.get(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT), "transfer mode");
  }
  return dxpl;
}

// Selects in `file_space` (and a matching memory space) the part this rank writes or reads.
// Returns the memory space.
H5Handle select_part(hid_t file_space, const std::vector<std::uint64_t>& global_shape, bool sharded,
                     bool take_all, std::uint64_t first_row, std::uint64_t rows, const std::string& what) {
  if (!sharded) {
    if (take_all) return h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(file_space), what);
    auto mem = h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(mem.get()), what);
    return mem;
  }
  if (rows == 0) {
    h5ok(H5Sselect_none(file_space), what);
    auto mem = h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(mem.get()), what);
    return mem;
  }
  std::vector<hsize_t> start(global_shape.size(), 0), count = to_hsize(global_shape);
  start[0] = first_row;
  count[0] = rows;
  h5ok(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
  return h5_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
}

H5Handle make_space(const std::vector<std::uint64_t>& shape, const std::string& what) {
  if (shape.empty()) return h5_space(H5Screate(H5S_SCALAR), what);
  auto dims = to_hsize(shape);
  return h5_space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), what);
}

}  // namespace cohort::checkpoint::detail
