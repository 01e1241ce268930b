// One-process access to checkpoints: listing, manifests, verification, pruning. These open
// the checkpoint's files through HDF5's POSIX driver and need no MPI.
#include <algorithm>
#include <map>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/crc32c.hpp"
#include "checkpoint/dataset.hpp"
#include "checkpoint/hdf5.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "checkpoint/pieces.hpp"
#include "checkpoint/retention.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint {

using namespace detail;

namespace {

// Reads dataset `name` of an open file block by block, checking its shape and type against
// `info`, and returns the CRC32C of its bytes. `sink`, when given, receives the bytes.
std::uint32_t read_dataset(hid_t file, const TensorInfo& info, std::vector<std::byte>* sink,
                           std::string_view file_name = kStateFile) {
  std::string what = "tensor '" + info.name + "'";
  auto [dataset, file_space] = open_tensor(file, info, file_name);
  if (sink) sink->resize(info.bytes);
  if (info.bytes == 0) return 0;
  hid_t mem_type = memory_type(info.dtype);
  if (info.shape.empty()) {
    std::vector<std::byte> scalar(info.bytes);
    h5ok(H5Dread(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, scalar.data()), "read " + what);
    if (sink) *sink = scalar;
    return crc32c(0, scalar.data(), scalar.size());
  }
  // Blocks of whole rows, about 64 MiB each, so a large tensor never needs all its memory.
  const std::uint64_t row_bytes = info.bytes / info.shape[0];
  const std::uint64_t block_rows = std::max<std::uint64_t>(1, (64u << 20) / row_bytes);
  std::vector<std::byte> buffer;
  std::uint32_t crc = 0;
  for (std::uint64_t row = 0; row < info.shape[0]; row += block_rows) {
    std::uint64_t n = std::min(block_rows, info.shape[0] - row);
    std::vector<hsize_t> start(info.shape.size(), 0), count(info.shape.begin(), info.shape.end());
    start[0] = row;
    count[0] = n;
    h5ok(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
    auto mem_space = h5_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
    std::byte* out;
    if (sink) {
      out = sink->data() + row * row_bytes;
    } else {
      buffer.resize(n * row_bytes);
      out = buffer.data();
    }
    h5ok(H5Dread(dataset.get(), mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out), "read " + what);
    crc = crc32c(crc, out, n * row_bytes);
  }
  return crc;
}

H5Handle open_h5(const fs::path& checkpoint, std::string_view name = kStateFile) {
  std::string path = (checkpoint / name).string();
  return h5_file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open " + path);
}

H5Handle open_state(const fs::path& checkpoint) { return open_h5(checkpoint); }

// Every file the manifest lists is there, a regular file of the size it gives.
void check_files(const fs::path& checkpoint, const Manifest& m, std::vector<Problem>& problems) {
  for (const auto& file : m.files) {
    const fs::path path = checkpoint / file.name;
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(path, ec))) {
      problems.push_back({"", file.name + " is missing (the manifest lists it)"});
      continue;
    }
    try {
      auto size = regular_file_size(path);
      if (size != file.bytes) {
        problems.push_back({"", file.name + " is " + std::to_string(size) + " bytes, the manifest says " +
                                    std::to_string(file.bytes) + " (truncated or overwritten)"});
      }
    } catch (const Error& e) {
      problems.push_back({"", e.what()});
    }
  }
}

// Format version 2: each piece is a dataset of its file at the manifest's offset, with the
// piece's checksum, and together they give the tensor's; state.h5 indexes the tensor.
class PieceVerifier {
 public:
  PieceVerifier(const fs::path& checkpoint, hid_t state) : checkpoint_(checkpoint), state_(state) {}

  // Returns the problem with `t`, or an empty string.
  std::string check(const TensorInfo& t) {
    if (!has_tensor(state_, t.name)) return std::string(kStateFile) + " has no /tensors/" + t.name;
    if (t.pieces.empty()) return check_crc(t.crc32c, read_dataset(state_, t, nullptr));
    std::uint32_t crc = 0;
    for (const auto& p : t.pieces) {
      const TensorInfo piece = piece_info(t, p);
      hid_t file = open(p.file);
      auto [dataset, space] = open_tensor(file, piece, p.file);
      if (p.offset && H5Dget_offset(dataset.get()) != *p.offset) {
        return "the piece in " + p.file + " is at byte " + std::to_string(H5Dget_offset(dataset.get())) +
               ", the manifest says " + std::to_string(*p.offset);
      }
      const std::uint32_t got = read_dataset(file, piece, nullptr, p.file);
      if (got != p.crc32c) {
        return "checksum mismatch in " + p.file + ", rows " + std::to_string(p.row) + " to " +
               std::to_string(p.row + stored_rows(piece) - 1) + " (manifest " + hex32(p.crc32c) + ", data " +
               hex32(got) + ")";
      }
      crc = crc32c_combine(crc, got, p.bytes);
    }
    return check_crc(t.crc32c, crc);
  }

 private:
  static std::string check_crc(std::uint32_t expected, std::uint32_t got) {
    if (got == expected) return {};
    return "checksum mismatch (manifest " + hex32(expected) + ", data " + hex32(got) + ")";
  }

  hid_t open(const std::string& name) {
    if (name == kStateFile) return state_;
    auto it = files_.find(name);
    if (it == files_.end()) it = files_.emplace(name, open_h5(checkpoint_, name)).first;
    return it->second.get();
  }

  fs::path checkpoint_;
  hid_t state_;
  std::map<std::string, H5Handle> files_;
};

}  // namespace

std::vector<Entry> list(const std::filesystem::path& dir) {
  if (!fs::is_directory(dir)) {
    throw input_error(dir.string() + " is not a directory; give the checkpoint directory (the one holding "
                      "step-XXXXXXXX directories)");
  }
  auto latest = read_latest(dir);
  std::vector<Entry> out;
  for (auto step : committed_steps(dir)) out.push_back({step, checkpoint_path(dir, step), latest == step});
  return out;
}

std::uint64_t Manifest::tensor_bytes() const {
  std::uint64_t total = 0;
  for (const auto& t : tensors) total += t.bytes;
  return total;
}

bool is_checkpoint(const std::filesystem::path& path) {
  return parse_step_dir_name(path.filename().string()).has_value() || fs::exists(path / kManifestFile);
}

std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) {
  if (is_checkpoint(path) || !fs::is_directory(path)) return path;
  auto entries = list(path);
  if (entries.empty()) {
    throw input_error(path.string() + " is neither a checkpoint nor a directory holding any; give a "
                      "step-XXXXXXXX directory");
  }
  return entries.back().path;
}

Manifest read_manifest(const std::filesystem::path& checkpoint) {
  fs::path manifest = checkpoint / kManifestFile;
  bool named_like_one = parse_step_dir_name(checkpoint.filename().string()).has_value();
  if (!fs::is_directory(checkpoint) || (!named_like_one && !fs::exists(manifest))) {
    throw input_error(checkpoint.string() + " is not a checkpoint (a step-XXXXXXXX directory holding " +
                      std::string(kManifestFile) + "); 'cohort ckpt ls DIR' lists a directory's checkpoints");
  }
  std::string text = read_text(manifest);
  return manifest_from_json(json::parse(text, manifest.string()), manifest.string());
}

VerifyReport verify(const std::filesystem::path& checkpoint, const std::function<void(std::uint64_t)>& on_tensor) {
  VerifyReport report;
  report.path = checkpoint;
  Manifest m;
  try {
    m = read_manifest(checkpoint);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::input) throw;
    report.problems.push_back({"", e.what()});
    return report;
  }
  report.step = m.step;
  auto named = parse_step_dir_name(checkpoint.filename().string());
  if (named && *named != m.step) {
    report.problems.push_back({"", "the manifest says step " + std::to_string(m.step) + ", the directory says " +
                                       std::to_string(*named)});
  }
  check_files(checkpoint, m, report.problems);
  if (!report.problems.empty()) return report;
  H5Lock h5;
  H5Handle file;
  try {
    file = open_state(checkpoint);
    auto stored_step = read_int_attr(file.get(), "cohort.step");
    if (stored_step != m.step) {
      report.problems.push_back({"", std::string(kStateFile) + " says step " + std::to_string(stored_step) +
                                         ", the manifest says " + std::to_string(m.step)});
    }
  } catch (const Error& e) {
    report.problems.push_back({"", e.what()});
    if (file.get() < 0) return report;
  }
  PieceVerifier pieces(checkpoint, file.get());
  for (const auto& t : m.tensors) {
    try {
      std::string problem;
      if (m.format_version >= 2) {
        problem = pieces.check(t);
      } else if (std::uint32_t crc = read_dataset(file.get(), t, nullptr); crc != t.crc32c) {
        problem = "checksum mismatch (manifest " + hex32(t.crc32c) + ", data " + hex32(crc) + ")";
      }
      if (!problem.empty()) report.problems.push_back({t.name, problem});
    } catch (const Error& e) {
      report.problems.push_back({t.name, e.what()});
    }
    if (on_tensor) on_tensor(t.bytes);
  }
  return report;
}

StateReader::StateReader(const fs::path& checkpoint) : checkpoint_(checkpoint), file_(open_state(checkpoint)) {}

void StateReader::read(const TensorInfo& tensor, std::vector<std::byte>& out) {
  std::uint32_t crc = 0;
  if (tensor.pieces.empty()) {
    crc = read_dataset(file_.get(), tensor, &out);
  } else {
    out.resize(tensor.bytes);
    crc = PieceReader(checkpoint_).read_rows(tensor, 0, stored_rows(tensor), out.data());
  }
  if (crc != tensor.crc32c) {
    throw Error("tensor '" + tensor.name + "' in " + checkpoint_.string() + ": checksum mismatch (manifest " +
                hex32(tensor.crc32c) + ", data " + hex32(crc) + ")");
  }
}

void read_tensor(const std::filesystem::path& checkpoint, const TensorInfo& tensor, std::vector<std::byte>& out) {
  StateReader(checkpoint).read(tensor, out);
}

std::vector<std::int64_t> prune(const std::filesystem::path& dir, const Retention& retention) {
  if (retention.keep_last < 0 || retention.keep_every < 0) {
    throw input_error("retention counts must not be negative (keep_last " + std::to_string(retention.keep_last) +
                      ", keep_every " + std::to_string(retention.keep_every) + ")");
  }
  if (!fs::is_directory(dir)) {
    throw input_error(dir.string() + " is not a directory; give the checkpoint directory (the one holding "
                      "step-XXXXXXXX directories)");
  }
  std::vector<std::string> errors = remove_leftovers(dir);
  auto steps = committed_steps(dir);
  std::optional<std::int64_t> newest_good;
  for (auto it = steps.rbegin(); it != steps.rend() && !newest_good; ++it) {
    if (verify(checkpoint_path(dir, *it)).ok()) newest_good = *it;
  }
  std::vector<std::int64_t> removed;
  for (auto& e : remove_steps(dir, steps_to_prune(steps, retention, newest_good), removed)) {
    errors.push_back(std::move(e));
  }
  auto remaining = committed_steps(dir);
  auto latest = read_latest(dir);
  if (!remaining.empty() && latest != remaining.back()) {
    try {
      write_latest(dir, remaining.back());
    } catch (const Error& e) {
      errors.push_back(e.what());
    }
  }
  if (!errors.empty()) {
    std::string text = "pruning " + dir.string() + " removed " + std::to_string(removed.size()) +
                       " checkpoint(s) but failed:";
    for (const auto& e : errors) text += " " + e + ";";
    text.pop_back();
    throw Error(text);
  }
  return removed;
}

}  // namespace cohort::checkpoint
