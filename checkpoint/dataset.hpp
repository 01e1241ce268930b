// checkpoint/dataset.hpp — private to checkpoint/: a tensor's dataset in state.h5, checked
// against the manifest before it is read.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/hdf5.hpp"
#include "checkpoint/layout.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

// Whether an open checkpoint file has a dataset /tensors/<name>.
bool has_tensor(hid_t file, const std::string& name);

// A tensor's dataset in an open checkpoint file, and its dataspace, once its shape and type
// are checked against the manifest's `info`, and its storage: reached through hard links,
// kept in the file itself (no external file, no virtual dataset; deflate, shuffle and
// fletcher32 the only filters), and no larger than that storage can hold. An Error naming
// the tensor otherwise.
struct TensorDataset {
  H5Handle dataset;
  H5Handle space;
};
// `file_name` names the file in messages.
// open_indexed checks the same but the storage: for state.h5 of format version 2, whose
// datasets are virtual, mapped onto the pieces in the ranks' files.
TensorDataset open_indexed(hid_t file, const TensorInfo& info, std::string_view file_name = kStateFile);
TensorDataset open_tensor(hid_t file, const TensorInfo& info, std::string_view file_name = kStateFile);

// A checkpoint's state.h5 open for reading tensor after tensor: opening the file once
// rather than per tensor matters when there are many (export).
class StateReader {
 public:
  explicit StateReader(const fs::path& checkpoint);
  // Reads `tensor` whole into `out` (resized), checking its checksum.
  void read(const TensorInfo& tensor, std::vector<std::byte>& out);

 private:
  fs::path checkpoint_;
  H5Lock lock_;
  H5Handle file_;
};

}  // namespace cohort::checkpoint::detail
