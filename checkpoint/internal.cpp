#include "checkpoint/internal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <iterator>
#include <random>
#include <set>

#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

// ---- HDF5 ----

namespace {

std::recursive_mutex& h5_mutex() {
  static std::recursive_mutex m;
  return m;
}

herr_t collect_error(unsigned, const H5E_error2_t* e, void* data) {
  auto* lines = static_cast<std::vector<std::string>*>(data);
  if (e->desc && *e->desc) lines->emplace_back(e->desc);
  return 0;
}

}  // namespace

H5Lock::H5Lock() : lock_(h5_mutex()) {
  H5Eget_auto2(H5E_DEFAULT, &old_func_, &old_data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

H5Lock::~H5Lock() { H5Eset_auto2(H5E_DEFAULT, old_func_, old_data_); }

std::string h5_error_text() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &lines);
  H5Eclear2(H5E_DEFAULT);
  if (lines.empty()) return "HDF5 error";
  // A failed system call is described by a long line of HDF5's ("file write failed: time =
  // …, errno = 28, error message = 'No space left on device', buf = …"): its errno says it
  // all.
  const auto at = lines.back().find("errno = ");
  if (at != std::string::npos) {
    const int errnum = std::atoi(lines.back().c_str() + at + 8);
    if (errnum > 0) lines.back() = std::strerror(errnum);
  }
  // The outermost line says what failed, the innermost why; the middle is HDF5's plumbing.
  if (lines.size() == 1 || lines.front() == lines.back()) return lines.front();
  return lines.front() + ": " + lines.back();
}

hid_t h5id(hid_t id, const std::string& what) {
  if (id < 0) throw Error(what + ": " + h5_error_text());
  return id;
}

void h5ok(herr_t rc, const std::string& what) {
  if (rc < 0) throw Error(what + ": " + h5_error_text());
}

void H5Handle::close(const std::string& what) {
  if (id_ < 0) return;
  herr_t rc = closer_(std::exchange(id_, H5I_INVALID_HID));
  h5ok(rc, what);
}

void H5Handle::reset() noexcept {
  if (id_ < 0) return;
  if (closer_(std::exchange(id_, H5I_INVALID_HID)) < 0) {
    std::cerr << "cohort: checkpoint: closing an HDF5 handle failed: " << h5_error_text() << "\n";
  }
}

WriteFile::WriteFile(fs::path path, hid_t fapl, bool alone) : path_(std::move(path)), alone_(alone) {
  file_ = h5_file(H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl), "create " + path_.string());
}

WriteFile::~WriteFile() {
  if (file_.get() < 0) return;
  // Given up: its blocks are freed first, so that the flush at close has room even on the
  // disk that filled up while it was written. A file that cannot be truncated is closed
  // all the same: the directory it sits in is removed as uncommitted.
  if (::truncate(path_.c_str(), 0) != 0) {
    std::cerr << "cohort: checkpoint: cannot empty " << path_.string() << " before closing it: " << std::strerror(errno)
              << "\n";
  }
  file_.reset();
}

void WriteFile::close() {
  const std::string what = "close " + path_.string();
  if (alone_) {
    // The flush at close writes what the metadata cache holds, each entry perhaps into a
    // block of its own. Without room for that it would fail, which HDF5 does not survive,
    // so it is refused while the file can still be given up cleanly. A generous bound: a
    // disk this full would refuse the manifest next.
    size_t max_size = 0, min_clean = 0, cached = 0;
    int entries = 0;
    struct statvfs disk {};
    if (H5Fget_mdc_size(file_.get(), &max_size, &min_clean, &cached, &entries) >= 0 &&
        ::statvfs(path_.parent_path().c_str(), &disk) == 0) {
      constexpr std::uint64_t kSlack = 64 << 10;
      const std::uint64_t block = std::min<std::uint64_t>(disk.f_frsize, kSlack);
      const std::uint64_t room = std::uint64_t{disk.f_bavail} * disk.f_frsize;
      const std::uint64_t needed = cached + static_cast<std::uint64_t>(std::max(entries, 0)) * block + kSlack;
      if (room < needed) throw Error(system_message(what, ENOSPC));
    }
    H5Eclear2(H5E_DEFAULT);
  }
  file_.close(what);
}

H5Handle h5_file(hid_t id, const std::string& what) { return {h5id(id, what), H5Fclose}; }
H5Handle h5_plist(hid_t id, const std::string& what) { return {h5id(id, what), H5Pclose}; }
H5Handle h5_space(hid_t id, const std::string& what) { return {h5id(id, what), H5Sclose}; }
H5Handle h5_dataset(hid_t id, const std::string& what) { return {h5id(id, what), H5Dclose}; }
H5Handle h5_attr(hid_t id, const std::string& what) { return {h5id(id, what), H5Aclose}; }
H5Handle h5_group(hid_t id, const std::string& what) { return {h5id(id, what), H5Gclose}; }
H5Handle h5_type(hid_t id, const std::string& what) { return {h5id(id, what), H5Tclose}; }

namespace {

const char* link_kind(H5L_type_t type) {
  switch (type) {
    case H5L_TYPE_SOFT: return "a soft link";
    case H5L_TYPE_EXTERNAL: return "a link to another file";
    default: return "a user-defined link";
  }
}

// Throws unless `path` names a hard link in `file`: a soft or external link could lead to
// any object of any file.
void check_hard_link(hid_t file, const std::string& path, const std::string& what) {
  H5L_info_t link{};
  if (H5Lget_info(file, path.c_str(), &link, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(what + ": " + std::string(kStateFile) + " has no /" + path);
  }
  if (link.type != H5L_TYPE_HARD) {
    throw Error(what + ": /" + path + " is " + link_kind(link.type) + ", not a dataset stored in " +
                std::string(kStateFile) + "; cohort does not follow links");
  }
}

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? UINT64_MAX : out;
}

// Deflate shrinks data at most about 1032-fold (zlib's bound, reached by long runs of one
// byte), so deflated storage of N bytes holds at most 1032 N.
constexpr std::uint64_t kDeflateMaxRatio = 1032;

// Throws unless `dataset`'s data is stored in `file` itself, within the file's size, and
// fills the dataset. External files and virtual datasets lead outside the checkpoint; a
// dataset that claims more than its storage can hold reads back as fill values, which
// would take hours for a terabyte "stored" in a few kilobytes.
void check_storage(hid_t file, hid_t dataset, const TensorInfo& info, const std::string& what) {
  const std::string state(kStateFile);
  auto dcpl = h5_plist(H5Dget_create_plist(dataset), what);
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout < 0) throw Error(what + ": " + h5_error_text());
  if (layout == H5D_VIRTUAL) {
    throw Error(what + ": is a virtual dataset, whose data lives in other files; cohort reads only what " + state +
                " stores");
  }
  const int external = H5Pget_external_count(dcpl.get());
  if (external != 0) {
    char name[512] = {};
    off_t offset = 0;
    hsize_t size = 0;
    if (external < 0 || H5Pget_external(dcpl.get(), 0, sizeof name - 1, name, &offset, &size) < 0) {
      H5Eclear2(H5E_DEFAULT);
    }
    throw Error(what + ": keeps its data in an external file (" + name + "); cohort reads only what " + state +
                " stores");
  }
  std::uint64_t expansion = 1;
  const int filters = H5Pget_nfilters(dcpl.get());
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0, values[8] = {};
    size_t count = std::size(values);
    char name[64] = {};
    const H5Z_filter_t filter = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &count, values,
                                               sizeof name - 1, name, &config);
    if (filter == H5Z_FILTER_DEFLATE) {
      expansion = saturating_mul(expansion, kDeflateMaxRatio);
    } else if (filter != H5Z_FILTER_SHUFFLE && filter != H5Z_FILTER_FLETCHER32) {
      H5Eclear2(H5E_DEFAULT);
      throw Error(what + ": is stored through HDF5 filter " + std::to_string(filter) +
                  (name[0] ? std::string(" (") + name + ")" : std::string()) +
                  ", which cohort does not read; store tensors uncompressed or with deflate");
    }
  }
  if (info.bytes == 0) return;
  hsize_t file_bytes = 0;
  h5ok(H5Fget_filesize(file, &file_bytes), what);
  const std::uint64_t stored = H5Dget_storage_size(dataset);
  if (stored > file_bytes || saturating_mul(stored, expansion) < info.bytes) {
    throw Error(what + ": claims " + std::to_string(info.bytes) + " bytes, but " + state + " (" +
                std::to_string(file_bytes) + " bytes) stores " + std::to_string(stored) + " bytes of it" +
                (expansion > 1 ? ", compressed" : "") + "; the rest would read back as fill values, not saved data");
  }
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t at = H5Dget_offset(dataset);
    if (at == HADDR_UNDEF || at > file_bytes || file_bytes - at < stored) {
      H5Eclear2(H5E_DEFAULT);
      throw Error(what + ": its data lies outside " + state + " (" + std::to_string(file_bytes) + " bytes)");
    }
  }
}

}  // namespace

bool has_tensor(hid_t file, const std::string& name) {
  // "tensors" is looked at first: a lookup through a link to another file would open it.
  H5L_info_t group{};
  if (H5Lget_info(file, "tensors", &group, H5P_DEFAULT) < 0 || group.type != H5L_TYPE_HARD) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  const htri_t found = H5Lexists(file, ("tensors/" + name).c_str(), H5P_DEFAULT);
  if (found < 0) H5Eclear2(H5E_DEFAULT);
  return found > 0;
}

TensorDataset open_tensor(hid_t file, const TensorInfo& info) {
  const std::string what = "tensor '" + info.name + "'";
  check_hard_link(file, "tensors", what);
  check_hard_link(file, "tensors/" + info.name, what);
  TensorDataset t;
  t.dataset = h5_dataset(H5Dopen2(file, ("tensors/" + info.name).c_str(), H5P_DEFAULT), "open " + what);
  t.space = h5_space(H5Dget_space(t.dataset.get()), what);
  const H5S_class_t space_class = H5Sget_simple_extent_type(t.space.get());
  const int rank = H5Sget_simple_extent_ndims(t.space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(t.space.get(), dims.data(), nullptr);
  if (rank < 0 || space_class != (info.shape.empty() ? H5S_SCALAR : H5S_SIMPLE) ||
      std::vector<std::uint64_t>(dims.begin(), dims.end()) != info.shape) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(what + ": the dataset's shape differs from the manifest's " + shape_text(info.shape));
  }
  auto type = h5_type(H5Dget_type(t.dataset.get()), what);
  if (dtype_of(type.get()) != info.dtype) {
    throw Error(what + ": the dataset's type differs from the manifest's " + std::string(to_string(info.dtype)));
  }
  check_storage(file, t.dataset.get(), info, what);
  return t;
}

namespace {

// Built once and kept for the life of the process, like HDF5's predefined types.
hid_t float16_type() {
  static const hid_t type = [] {
    auto t = h5_type(H5Tcopy(H5T_IEEE_F32LE), "float16 type");
    h5ok(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), "float16 type");
    h5ok(H5Tset_size(t.get(), 2), "float16 type");
    h5ok(H5Tset_ebias(t.get(), 15), "float16 type");
    return t.release();
  }();
  return type;
}

// h5py's boolean: an int8 enum FALSE=0, TRUE=1, which NumPy reads as bool.
hid_t bool_type() {
  static const hid_t type = [] {
    auto t = h5_type(H5Tenum_create(H5T_NATIVE_INT8), "bool type");
    std::int8_t f = 0, t1 = 1;
    h5ok(H5Tenum_insert(t.get(), "FALSE", &f), "bool type");
    h5ok(H5Tenum_insert(t.get(), "TRUE", &t1), "bool type");
    return t.release();
  }();
  return type;
}

}  // namespace

hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::float16: return float16_type();
    case DType::float32: return H5T_IEEE_F32LE;
    case DType::float64: return H5T_IEEE_F64LE;
    case DType::int8: return H5T_STD_I8LE;
    case DType::int16: return H5T_STD_I16LE;
    case DType::int32: return H5T_STD_I32LE;
    case DType::int64: return H5T_STD_I64LE;
    case DType::uint8: return H5T_STD_U8LE;
    case DType::uint16: return H5T_STD_U16LE;
    case DType::uint32: return H5T_STD_U32LE;
    case DType::uint64: return H5T_STD_U64LE;
    case DType::bool8: return bool_type();
    default: throw input_error("checkpoints do not store " + std::string(to_string(dtype)));
  }
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::float16: return float16_type();
    case DType::float32: return H5T_NATIVE_FLOAT;
    case DType::float64: return H5T_NATIVE_DOUBLE;
    case DType::int8: return H5T_NATIVE_INT8;
    case DType::int16: return H5T_NATIVE_INT16;
    case DType::int32: return H5T_NATIVE_INT32;
    case DType::int64: return H5T_NATIVE_INT64;
    case DType::uint8: return H5T_NATIVE_UINT8;
    case DType::uint16: return H5T_NATIVE_UINT16;
    case DType::uint32: return H5T_NATIVE_UINT32;
    case DType::uint64: return H5T_NATIVE_UINT64;
    case DType::bool8: return bool_type();
    default: throw input_error("checkpoints do not store " + std::string(to_string(dtype)));
  }
}

std::optional<DType> dtype_of(hid_t type) {
  size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      if (size == 2) return DType::float16;
      if (size == 4) return DType::float32;
      if (size == 8) return DType::float64;
      return std::nullopt;
    case H5T_INTEGER: {
      bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      switch (size) {
        case 1: return is_signed ? DType::int8 : DType::uint8;
        case 2: return is_signed ? DType::int16 : DType::uint16;
        case 4: return is_signed ? DType::int32 : DType::uint32;
        case 8: return is_signed ? DType::int64 : DType::uint64;
        default: return std::nullopt;
      }
    }
    case H5T_ENUM:
      if (size == 1 && H5Tget_nmembers(type) == 2) return DType::bool8;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void write_int_attr(hid_t obj, const char* name, std::int64_t value) {
  std::string what = std::string("attribute ") + name;
  auto space = h5_space(H5Screate(H5S_SCALAR), what);
  auto attr = h5_attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), what);
  h5ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), what);
  attr.close(what);
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  std::string what = std::string("attribute ") + name;
  auto type = h5_type(H5Tcopy(H5T_C_S1), what);
  h5ok(H5Tset_size(type.get(), H5T_VARIABLE), what);
  h5ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), what);
  auto space = h5_space(H5Screate(H5S_SCALAR), what);
  auto attr = h5_attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), what);
  const char* text = value.c_str();
  h5ok(H5Awrite(attr.get(), type.get(), &text), what);
  attr.close(what);
}

namespace {

// The file an HDF5 object lives in, for messages.
std::string file_name_of(hid_t obj) {
  const ssize_t n = H5Fget_name(obj, nullptr, 0);
  if (n <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return "HDF5 file";
  }
  std::string name(static_cast<size_t>(n) + 1, '\0');
  H5Fget_name(obj, name.data(), name.size());
  name.resize(static_cast<size_t>(n));
  return name;
}

// Empty when `space` holds exactly one element (a scalar, or an array of one); otherwise
// what it holds instead, in words.
std::string unless_one_element(hid_t space) {
  switch (H5Sget_simple_extent_type(space)) {
    case H5S_SCALAR:
      return "";
    case H5S_SIMPLE: {
      const hssize_t n = H5Sget_simple_extent_npoints(space);
      if (n == 1) return "";
      return "is an array of " + std::to_string(n) + " elements";
    }
    case H5S_NULL:
      return "is empty (no elements)";
    default:
      H5Eclear2(H5E_DEFAULT);
      return "has an unreadable dataspace";
  }
}

std::string type_in_words(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return "a " + std::to_string(H5Tget_size(type) * 8) + "-bit integer";
    case H5T_FLOAT: return "a floating-point number";
    case H5T_STRING: return "a string";
    case H5T_COMPOUND: return "a compound value";
    case H5T_ARRAY: return "an array type";
    case H5T_ENUM: return "an enumeration";
    case H5T_VLEN: return "a variable-length sequence";
    case H5T_REFERENCE: return "a reference";
    default: H5Eclear2(H5E_DEFAULT); return "a value of another type";
  }
}

// Opens attribute `name` of `obj` once it is known to hold one element whose type is of
// `type_class` (and at most `max_size` bytes): reading anything else into one value would
// write past it. A mismatch is damage naming the file, the attribute and `expected`.
H5Handle open_single_attr(hid_t obj, const char* name, H5T_class_t type_class, size_t max_size,
                          const std::string& expected, H5Handle& type) {
  const std::string what = file_name_of(obj) + ": attribute " + name;
  auto attr = h5_attr(H5Aopen(obj, name, H5P_DEFAULT), what);
  auto space = h5_space(H5Aget_space(attr.get()), what);
  if (auto shape = unless_one_element(space.get()); !shape.empty()) {
    throw Error(what + ": " + shape + ", expected " + expected);
  }
  type = h5_type(H5Aget_type(attr.get()), what);
  if (H5Tget_class(type.get()) != type_class || H5Tget_size(type.get()) > max_size) {
    throw Error(what + ": is " + type_in_words(type.get()) + ", expected " + expected);
  }
  return attr;
}

}  // namespace

std::int64_t read_int_attr(hid_t obj, const char* name) {
  H5Handle type;
  auto attr = open_single_attr(obj, name, H5T_INTEGER, sizeof(std::int64_t), "a single 64-bit integer", type);
  std::int64_t value = 0;
  h5ok(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), file_name_of(obj) + ": attribute " + name);
  return value;
}

std::string read_string_attr(hid_t obj, const char* name) {
  const std::string what = file_name_of(obj) + ": attribute " + name;
  H5Handle stored;
  // A fixed-length string longer than the whole file cannot be stored in it.
  auto file = h5_file(H5Iget_file_id(obj), what);
  hsize_t file_bytes = 0;
  h5ok(H5Fget_filesize(file.get(), &file_bytes), what);
  auto attr = open_single_attr(obj, name, H5T_STRING, static_cast<size_t>(file_bytes), "a single string", stored);
  if (H5Tis_variable_str(stored.get()) > 0) {
    auto type = h5_type(H5Tcopy(H5T_C_S1), what);
    h5ok(H5Tset_size(type.get(), H5T_VARIABLE), what);
    h5ok(H5Tset_cset(type.get(), H5Tget_cset(stored.get())), what);
    char* text = nullptr;
    h5ok(H5Aread(attr.get(), type.get(), &text), what);
    std::string out = text ? text : "";
    H5free_memory(text);
    return out;
  }
  size_t size = H5Tget_size(stored.get());
  std::string out(size, '\0');
  h5ok(H5Aread(attr.get(), stored.get(), out.data()), what);
  out.resize(std::min(out.size(), out.find('\0')));
  return out;
}

// ---- The ranks ----

Group::Group(MPI_Comm comm) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  if (comm == MPI_COMM_NULL) throw input_error("checkpointer: the communicator is MPI_COMM_NULL");
  if (MPI_Comm_dup(comm, &comm_) != MPI_SUCCESS) throw Error("checkpointer: MPI_Comm_dup failed");
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  mpi_ = true;
}

Group::~Group() {
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

std::string Group::broadcast(std::string text, int root) const {
  if (!mpi_) return text;
  unsigned long long size = text.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, comm_);
  text.resize(size);
  if (size > 0) MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, root, comm_);
  return text;
}

void Group::barrier() const {
  if (mpi_) MPI_Barrier(comm_);
}

void Group::agree(const std::optional<Error>& mine) const {
  struct Status {
    int failed;
    int kind;
  };
  Status status{mine ? 1 : 0, mine ? static_cast<int>(mine->kind()) : 0};
  auto all = allgather(status);
  int first = -1;
  for (int r = 0; r < size_; ++r) {
    if (all[static_cast<size_t>(r)].failed) {
      first = r;
      break;
    }
  }
  if (first < 0) return;
  std::string message = broadcast(rank_ == first ? std::string(mine->what()) : std::string(), first);
  if (rank_ != first) message = "rank " + std::to_string(first) + ": " + message;
  throw Error(message, static_cast<ErrorKind>(all[static_cast<size_t>(first)].kind));
}

// ---- Directory layout ----

std::string step_dir_name(std::int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

std::optional<std::int64_t> parse_step_dir_name(std::string_view name) {
  constexpr std::string_view prefix = "step-";
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto digits = name.substr(prefix.size());
  if (digits.size() < 8 || digits.size() > 18) return std::nullopt;
  std::int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  // One spelling per step: "step-000000040" is not step 40's directory.
  if (step_dir_name(step) != name) return std::nullopt;
  return step;
}

std::vector<std::int64_t> committed_steps(const fs::path& dir) {
  std::vector<std::int64_t> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto step = parse_step_dir_name(entry.path().filename().string());
    if (step && entry.is_directory()) steps.push_back(*step);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw Error(system_message("cannot read checkpoint directory " + dir.string(), ec.value()));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<std::int64_t> read_latest(const fs::path& dir) {
  std::string text;
  try {
    text = read_text(dir / kLatestFile);
  } catch (const Error&) {
    return std::nullopt;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return parse_step_dir_name(text);
}

std::string nonce() {
  static std::mt19937_64 gen{std::random_device{}() ^ (static_cast<std::uint64_t>(::getpid()) << 32)};
  static std::mutex m;
  std::lock_guard lock(m);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ReadAhead::ReadAhead(const fs::path& path)
    : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) {}

ReadAhead::~ReadAhead() {
  if (fd_ >= 0) ::close(fd_);
}

void ReadAhead::advise(std::uint64_t offset, std::uint64_t size) const noexcept {
  if (fd_ >= 0 && size > 0) {
    ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_WILLNEED);
  }
}

std::uint64_t regular_file_size(const fs::path& path) { return open_regular(path).size; }

bool exchange_durably(const fs::path& a, const fs::path& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) return false;
    throw Error(system_message("exchange " + a.string() + " and " + b.string(), errno));
  }
  fsync_path(b.parent_path());
  if (a.parent_path() != b.parent_path()) fsync_path(a.parent_path());
  return true;
}

void write_latest(const fs::path& dir, std::int64_t step) {
  write_file_atomically(dir / kLatestFile, step_dir_name(step) + "\n");
}

std::vector<std::string> remove_leftovers(const fs::path& dir) {
  std::vector<std::string> errors;
  std::vector<fs::path> doomed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    // ".latest.tmp." is AtomicFile's temporary; ".latest.tmp-" that of earlier versions.
    if (name.rfind(".step-", 0) == 0 || name.rfind(".latest.tmp", 0) == 0) doomed.push_back(entry.path());
  }
  for (const auto& path : doomed) {
    fs::remove_all(path, ec);
    if (ec) errors.push_back(system_message("remove " + path.string(), ec.value()));
  }
  return errors;
}

// ---- Manifest ----

json::Value metadata_to_json(const Metadata& m) {
  json::Value v = json::Value::object();
  v.set("epoch", m.epoch);
  v.set("hyperparameters", m.hyperparameters);
  v.set("rng", m.rng);
  v.set("attributes", m.attributes);
  return v;
}

Metadata metadata_from_json(const json::Value& v) {
  Metadata m;
  if (const auto* e = v.find("epoch")) m.epoch = e->as_int();
  if (const auto* h = v.find("hyperparameters")) m.hyperparameters = *h;
  if (const auto* r = v.find("rng")) m.rng = *r;
  if (const auto* a = v.find("attributes")) m.attributes = *a;
  return m;
}

json::Value manifest_to_json(const Manifest& m) {
  json::Value v = json::Value::object();
  v.set("format", "cohort-checkpoint");
  v.set("format_version", m.format_version);
  v.set("step", m.step);
  v.set("time", m.time);
  v.set("world_size", m.world_size);
  json::Value files = json::Value::array();
  files.push(json::Object{{"name", json::Value(kStateFile)}, {"bytes", json::Value(m.state_bytes)}});
  v.set("files", std::move(files));
  json::Value tensors = json::Value::array();
  for (const auto& t : m.tensors) {
    json::Value shape = json::Value::array();
    for (auto d : t.shape) shape.push(json::Value(d));
    tensors.push(json::Object{{"name", json::Value(t.name)},
                              {"dtype", json::Value(to_string(t.dtype))},
                              {"shape", std::move(shape)},
                              {"sharding", json::Value(to_string(t.sharding))},
                              {"bytes", json::Value(t.bytes)},
                              {"crc32c", json::Value(t.crc32c)},
                              {"compressed", json::Value(t.compressed)}});
  }
  v.set("tensors", std::move(tensors));
  v.set("metadata", metadata_to_json(m.metadata));
  return v;
}

Manifest manifest_from_json(const json::Value& v, const std::string& source) {
  std::string field;
  auto get = [&](const json::Value& obj, const std::string& key, const std::string& path) -> const json::Value& {
    field = path;
    return obj.at(key);
  };
  try {
    Manifest m;
    field = "(document)";
    if (!v.is_object()) throw Error("expected a JSON object");
    if (get(v, "format", "format").as_string() != "cohort-checkpoint") {
      throw Error("is \"" + v.at("format").as_string() + "\", expected \"cohort-checkpoint\"");
    }
    const auto version = get(v, "format_version", "format_version").as_int();
    if (version != kFormatVersion) {
      throw Error("version " + std::to_string(version) + " is not supported (this cohort reads " +
                  std::to_string(kFormatVersion) + "); use a newer cohort");
    }
    m.format_version = kFormatVersion;
    m.step = get(v, "step", "step").as_int();
    m.time = get(v, "time", "time").as_string();
    m.world_size = static_cast<int>(get(v, "world_size", "world_size").as_int());
    const auto& files = get(v, "files", "files").as_array();
    bool found_state = false;
    for (size_t i = 0; i < files.size(); ++i) {
      std::string at = "files[" + std::to_string(i) + "]";
      if (get(files[i], "name", at + ".name").as_string() == kStateFile) {
        auto bytes = get(files[i], "bytes", at + ".bytes").as_int();
        if (bytes < 0) throw Error("must not be negative");
        m.state_bytes = static_cast<std::uint64_t>(bytes);
        found_state = true;
      }
    }
    field = "files";
    if (!found_state) throw Error(std::string("does not list ") + std::string(kStateFile));
    const auto& tensors = get(v, "tensors", "tensors").as_array();
    // Ordered rather than hashed: a crafted manifest cannot make lookups degrade.
    std::set<std::string> names;
    for (size_t i = 0; i < tensors.size(); ++i) {
      std::string at = "tensors[" + std::to_string(i) + "]";
      const auto& t = tensors[i];
      TensorInfo info;
      info.name = get(t, "name", at + ".name").as_string();
      info.dtype = parse_dtype(get(t, "dtype", at + ".dtype").as_string(), stored_dtypes());
      for (const auto& d : get(t, "shape", at + ".shape").as_array()) {
        if (d.as_int() < 0) throw Error("dimensions must not be negative");
        info.shape.push_back(static_cast<std::uint64_t>(d.as_int()));
      }
      const auto& sharding = get(t, "sharding", at + ".sharding").as_string();
      if (sharding == "replicated") info.sharding = Sharding::replicated;
      else if (sharding == "rows") info.sharding = Sharding::rows;
      else throw Error("\"" + sharding + "\" is neither \"replicated\" nor \"rows\"");
      auto bytes = get(t, "bytes", at + ".bytes").as_int();
      info.bytes = static_cast<std::uint64_t>(bytes);
      field = at + ".bytes";
      std::uint64_t expected = 0;
      if (__builtin_mul_overflow(element_count(info.shape), size_of(info.dtype), &expected)) {
        throw Error("shape " + shape_text(info.shape) + " of " + std::string(to_string(info.dtype)) +
                    " is more than 2^64 bytes");
      }
      if (bytes < 0 || info.bytes != expected) throw Error("does not match the dtype and shape");
      auto crc = get(t, "crc32c", at + ".crc32c").as_int();
      if (crc < 0 || crc > 0xFFFFFFFFll) throw Error("not a 32-bit checksum");
      info.crc32c = static_cast<std::uint32_t>(crc);
      if (const auto* c = t.find("compressed")) info.compressed = c->as_bool();
      field = at + ".name";
      check_tensor_name(info.name);
      if (!names.insert(info.name).second) throw Error("tensor '" + info.name + "' is listed twice");
      m.tensors.push_back(std::move(info));
    }
    if (const auto* meta = v.find("metadata")) {
      field = "metadata";
      m.metadata = metadata_from_json(*meta);
    }
    return m;
  } catch (const Error& e) {
    throw Error(source + ": " + field + ": " + e.what());
  }
}

// ---- Retention ----

std::vector<std::int64_t> steps_to_prune(const std::vector<std::int64_t>& steps, const Retention& retention,
                                         std::optional<std::int64_t> protect) {
  if (retention.keep_last <= 0 && retention.keep_every <= 0) return {};
  std::set<std::int64_t> keep;
  if (protect) keep.insert(*protect);
  if (retention.keep_last > 0) {
    auto n = std::min<size_t>(steps.size(), static_cast<size_t>(retention.keep_last));
    keep.insert(steps.end() - static_cast<std::ptrdiff_t>(n), steps.end());
  }
  if (retention.keep_every > 0) {
    for (auto s : steps) {
      if (s % retention.keep_every == 0) keep.insert(s);
    }
  }
  std::vector<std::int64_t> out;
  for (auto s : steps) {
    if (!keep.count(s)) out.push_back(s);
  }
  return out;
}

std::vector<std::string> remove_steps(const fs::path& dir, const std::vector<std::int64_t>& steps,
                                      std::vector<std::int64_t>& removed) {
  std::vector<std::string> errors;
  for (auto step : steps) {
    fs::path from = dir / step_dir_name(step);
    fs::path hidden = dir / ("." + step_dir_name(step) + ".deleting-" + nonce());
    try {
      // After this rename the checkpoint is no longer committed; a crash during the
      // deletion below leaves only a hidden leftover.
      rename_durably(from, hidden);
    } catch (const Error& e) {
      errors.push_back(e.what());
      continue;
    }
    removed.push_back(step);
    std::error_code ec;
    fs::remove_all(hidden, ec);
    if (ec) errors.push_back(system_message("remove " + hidden.string(), ec.value()));
  }
  return errors;
}

std::uint64_t element_count(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) throw input_error("shape " + shape_text(shape) + " is too large");
  }
  return n;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

void check_tensor_name(const std::string& name) {
  if (name.empty()) throw input_error("a tensor has an empty name; give every tensor a name");
  if (name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    throw input_error("tensor name '" + name + "' cannot name an HDF5 dataset: use any characters but '/' and NUL, "
                      "and not '.' or '..'");
  }
}

}  // namespace cohort::checkpoint::detail
