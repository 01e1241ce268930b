// The arrays of batch prediction. HDF5 goes through checkpoint/'s wrappers (one lock, errors
// as cohort::Error, owned handles), so that serve/ holds no second set of them.
#include "serve/predict_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "checkpoint/hdf5.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"
#include "serve/npy.hpp"

namespace cohort::serve::detail {
namespace {

namespace h5 = cohort::checkpoint::detail;

std::vector<hsize_t> dims_of(const Shape& shape) { return {shape.begin(), shape.end()}; }

void read_at(int fd, std::byte* out, std::size_t bytes, std::uint64_t offset, const std::string& what) {
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, out, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(system_message("read " + what, errno));
    if (n == 0) throw Error(what + ": the file ended early (was it cut short while being read?)");
    out += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

class NpyInput : public InputArray {
 public:
  explicit NpyInput(const fs::path& file) {
    name_ = file.string();
    fd_ = Fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) throw input_error(system_message("--input " + name_ + ": cannot open it", errno));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw Error(system_message("stat " + name_, errno));
    if (!S_ISREG(st.st_mode)) throw input_error("--input " + name_ + ": not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::string prefix(std::min<std::uint64_t>(size, kNpyMaxPrefix), '\0');
    read_at(fd_.get(), reinterpret_cast<std::byte*>(prefix.data()), prefix.size(), 0, name_);
    header_ = parse_npy_header(prefix, name_);
    info_ = {header_.dtype, header_.shape};
    if (info_.shape.empty()) throw input_error(name_ + ": holds a scalar; batch prediction needs rows (shape (N, …))");
    const std::uint64_t needed = header_.data_offset + static_cast<std::uint64_t>(info_.rows()) * info_.row_bytes();
    if (size < needed) {
      throw input_error(name_ + ": cut short: shape " + shape_text(info_.shape) + " needs " + std::to_string(needed) +
                        " bytes, the file has " + std::to_string(size));
    }
  }

  void read_rows(std::int64_t first, std::int64_t count, std::byte* out) override {
    const std::size_t row = info_.row_bytes();
    read_at(fd_.get(), out, static_cast<std::size_t>(count) * row,
            header_.data_offset + static_cast<std::uint64_t>(first) * row, name_);
    if (header_.big_endian) swap_bytes(out, static_cast<std::size_t>(count) * row, size_of(info_.dtype));
  }

 private:
  Fd fd_;
  NpyHeader header_;
};

herr_t collect_dataset(hid_t, const char* name, const H5O_info_t* info, void* data) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

class Hdf5Input : public InputArray {
 public:
  Hdf5Input(const fs::path& file, const std::string& dataset) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw input_error("--input " + file.string() + ": no such file");
    if (H5Fis_hdf5(file.c_str()) <= 0) {
      throw input_error("--input " + file.string() + ": not an HDF5 file (a NumPy array needs a .npy name)");
    }
    file_ = h5::h5_file(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "--input " + file.string());
    const std::string path = dataset.empty() ? only_dataset(file) : dataset;
    dataset_ = path.starts_with("/") ? path : "/" + path;
    name_ = file.string() + ":" + dataset_;
    if (H5Lexists(file_.get(), path.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      throw input_error("--input-dataset " + path + ": " + file.string() + " has no such dataset (it holds " +
                        join(datasets(), ", ") + ")");
    }
    handle_ = h5::h5_dataset(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT), name_ + ": not a dataset");
    describe();
  }

  void read_rows(std::int64_t first, std::int64_t count, std::byte* out) override {
    std::vector<hsize_t> start(info_.shape.size(), 0), size = dims_of(info_.shape);
    start[0] = static_cast<hsize_t>(first);
    size[0] = static_cast<hsize_t>(count);
    auto space = h5::h5_space(H5Dget_space(handle_.get()), name_);
    h5::h5ok(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, size.data(), nullptr), name_);
    auto memory = h5::h5_space(H5Screate_simple(static_cast<int>(size.size()), size.data(), nullptr), name_);
    h5::h5ok(H5Dread(handle_.get(), h5::memory_type(info_.dtype), memory.get(), space.get(), H5P_DEFAULT, out),
             "read " + name_);
  }

 private:
  std::vector<std::string> datasets() {
    std::vector<std::string> found;
    h5::h5ok(H5Ovisit2(file_.get(), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &found, H5O_INFO_BASIC), "list datasets");
    return found;
  }

  std::string only_dataset(const fs::path& file) {
    auto found = datasets();
    if (found.size() == 1) return found[0];
    if (found.empty()) throw input_error("--input " + file.string() + ": holds no dataset");
    throw input_error("--input " + file.string() + ": holds " + std::to_string(found.size()) + " datasets (" +
                      join(found, ", ") + "): choose one with --input-dataset NAME");
  }

  void describe() {
    auto type = h5::h5_type(H5Dget_type(handle_.get()), name_);
    const auto dtype = h5::dtype_of(type.get());
    if (!dtype) throw input_error(name_ + ": holds no numbers cohort reads (bool, integers, float16..float64)");
    auto space = h5::h5_space(H5Dget_space(handle_.get()), name_);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 1) throw input_error(name_ + ": holds a scalar; batch prediction needs rows (shape (N, …))");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    info_ = {*dtype, Shape(dims.begin(), dims.end())};
    element_count(info_.shape);  // refuses a shape too large to hold
  }

  h5::H5Lock lock_;
  h5::H5Handle file_;
  h5::H5Handle handle_;
};

class NpyOutput : public OutputArray {
 public:
  NpyOutput(const fs::path& file, const ArrayInfo& info) : file_(file), row_bytes_(info.row_bytes()) {
    file_.write(npy_header(info.dtype, info.shape));
  }
  void append(const std::byte* data, std::int64_t rows) override {
    file_.write({reinterpret_cast<const char*>(data), static_cast<std::size_t>(rows) * row_bytes_});
  }
  void commit() override { file_.commit(); }

 private:
  AtomicFile file_;
  std::size_t row_bytes_;
};

// Written beside its path under a name nobody else uses, renamed over it on commit.
class Hdf5Output : public OutputArray {
 public:
  Hdf5Output(const fs::path& file, const std::string& dataset, const ArrayInfo& info)
      : path_(file), tmp_(file.parent_path() / ("." + file.filename().string() + ".tmp." + unguessable_name(12))),
        info_(info) {
    file_.emplace(tmp_, H5P_DEFAULT, true);
    const std::string what = file.string() + ":/" + dataset;
    auto dims = dims_of(info.shape);
    auto space = h5::h5_space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), what);
    auto links = h5::h5_plist(H5Pcreate(H5P_LINK_CREATE), what);
    h5::h5ok(H5Pset_create_intermediate_group(links.get(), 1), what);
    dataset_ = h5::h5_dataset(H5Dcreate2(file_->get(), dataset.c_str(), h5::file_type(info.dtype), space.get(),
                                         links.get(), H5P_DEFAULT, H5P_DEFAULT),
                              "create " + what);
  }
  ~Hdf5Output() override {
    dataset_.reset();
    file_.reset();
    std::error_code ec;
    if (!committed_) fs::remove(tmp_, ec);
  }

  void append(const std::byte* data, std::int64_t rows) override {
    std::vector<hsize_t> start(info_.shape.size(), 0), size = dims_of(info_.shape);
    start[0] = static_cast<hsize_t>(written_);
    size[0] = static_cast<hsize_t>(rows);
    auto space = h5::h5_space(H5Dget_space(dataset_.get()), path_.string());
    h5::h5ok(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, size.data(), nullptr), path_.string());
    auto memory = h5::h5_space(H5Screate_simple(static_cast<int>(size.size()), size.data(), nullptr), path_.string());
    h5::h5ok(H5Dwrite(dataset_.get(), h5::memory_type(info_.dtype), memory.get(), space.get(), H5P_DEFAULT, data),
             "write " + path_.string());
    written_ += rows;
  }

  void commit() override {
    dataset_.close("close " + path_.string());
    file_->close();
    fsync_path(tmp_);
    rename_durably(tmp_, path_);
    committed_ = true;
  }

 private:
  h5::H5Lock lock_;
  fs::path path_, tmp_;
  ArrayInfo info_;
  std::optional<h5::WriteFile> file_;
  h5::H5Handle dataset_;
  std::int64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace

std::size_t ArrayInfo::row_bytes() const {
  Shape row(shape.begin() + (shape.empty() ? 0 : 1), shape.end());
  return static_cast<std::size_t>(element_count(row)) * size_of(dtype);
}

bool is_npy(const fs::path& file) { return file.extension() == ".npy"; }

std::unique_ptr<InputArray> open_input(const fs::path& file, const std::string& dataset) {
  if (!is_npy(file)) return std::make_unique<Hdf5Input>(file, dataset);
  if (!dataset.empty()) {
    throw input_error("--input-dataset " + dataset + ": " + file.string() + " is a .npy file, which holds one array");
  }
  return std::make_unique<NpyInput>(file);
}

std::unique_ptr<OutputArray> create_output(const fs::path& file, const std::string& dataset, const ArrayInfo& info) {
  if (info.dtype == DType::bfloat16) {
    throw input_error("the model gives bfloat16, which neither HDF5 nor .npy holds: have it return float32 (.float())");
  }
  if (is_npy(file)) return std::make_unique<NpyOutput>(file, info);
  return std::make_unique<Hdf5Output>(file, dataset, info);
}

}  // namespace cohort::serve::detail
