// HDF5 for checkpoints: one lock, errors as text, owned handles, the file a save writes,
// element types and root attributes.
#include "checkpoint/hdf5.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

namespace cohort::checkpoint::detail {

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

}  // namespace cohort::checkpoint::detail
