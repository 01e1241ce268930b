// libFuzzer target: a checkpoint whose state.h5 and manifest.json were changed the ways a
// damaged or crafted checkpoint differs from a good one. A small good checkpoint is saved
// once; for each input a copy of it is altered as the input's bytes say (attributes
// replaced by other types and shapes, datasets by other types, shapes, layouts, filters,
// external or virtual storage, links, manifest fields, flipped data bytes) and then read
// the ways cohort reads a checkpoint: verify(), load_latest() and read_tensor() (export).
// Each must answer with a result or a cohort::Error; a crash, a sanitizer report, another
// exception or a hang is a bug.
//
// HDF5's own parsing of arbitrary bytes is not the target: the file is always one that
// HDF5 itself wrote, and only its content is crafted.
//
// By hand, with checkpoint/ and common/ compiled in so that the fuzzer sees their coverage:
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DOMPI_SKIP_MPICXX=1 \
//     -I. -Ibuild/common/generated -isystem /usr/include/hdf5/openmpi \
//     -isystem /usr/lib/x86_64-linux-gnu/openmpi/include \
//     tests/fuzz/checkpoint_file_fuzz.cpp checkpoint/{checkpointer,crc32c,internal,tools}.cpp \
//     common/{error,fd,json}.cpp -o checkpoint_file_fuzz \
//     -L/usr/lib/x86_64-linux-gnu/hdf5/openmpi -L/usr/lib/x86_64-linux-gnu/openmpi/lib -lhdf5 -lmpi
//   mkdir -p found && ./checkpoint_file_fuzz -max_total_time=60 found tests/fuzz/corpus/checkpoint_file
#include <hdf5.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "common/error.hpp"
#include "common/json.hpp"

namespace {

namespace fs = std::filesystem;
using namespace cohort;
using namespace cohort::checkpoint;

// The input, consumed a few bytes at a time; zeros once it runs out.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | byte();
    return v;
  }
  std::uint64_t u64() { return std::uint64_t{u32()} << 32 | u32(); }
  std::string bytes(size_t n) {
    std::string out;
    while (n-- > 0 && !empty()) out += static_cast<char>(byte());
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

struct Slots {
  std::vector<float> w = std::vector<float>(4 * 8);
  std::vector<std::int64_t> c = std::vector<std::int64_t>(16);
  double lr = 0;
  std::vector<std::uint8_t> flags = std::vector<std::uint8_t>(3);
  std::uint16_t half = 0;

  std::vector<TensorSlot> slots() {
    return {{"w", DType::float32, {4, 8}, Sharding::rows, w.data()},
            {"c", DType::int64, {16}, Sharding::replicated, c.data()},
            {"lr", DType::float64, {}, Sharding::replicated, &lr},
            {"flags", DType::bool8, {3}, Sharding::replicated, flags.data()},
            {"half", DType::float16, {}, Sharding::replicated, &half}};
  }
};

const char* const kTensors[] = {"w", "c", "lr", "flags", "half"};

// Member `key` of a JSON object, for changing in place; nullptr when absent.
json::Value* member(json::Value& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  for (auto& [k, v] : object.as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

// The scratch directory: a good checkpoint saved once, and the copy each input alters.
struct Scratch {
  fs::path root, good, work, outside;

  Scratch() {
    std::string templ = (fs::temp_directory_path() / "cohort-ckpt-fuzz.XXXXXX").string();
    if (!::mkdtemp(templ.data())) abort();
    root = templ;
    good = root / "good";
    work = root / "work";
    outside = root / "outside.bin";
    Slots s;
    for (size_t i = 0; i < s.w.size(); ++i) s.w[i] = static_cast<float>(i) * 0.5f;
    for (size_t i = 0; i < s.c.size(); ++i) s.c[i] = static_cast<std::int64_t>(i * i);
    s.lr = 0.125;
    s.flags = {1, 0, 1};
    s.half = 0x3C00;
    State state;
    for (const auto& slot : s.slots()) {
      state.tensors.push_back({slot.name, slot.dtype, slot.shape, slot.sharding, slot.data, slot.name == "c"});
    }
    Options options;
    options.warn = [](const std::string&) {};
    Checkpointer(good, MPI_COMM_WORLD, options).save(3, state);
    std::ofstream(outside, std::ios::binary) << std::string(4096, 'x');
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

// An HDF5 type chosen by the input: the kinds a tensor or attribute could be stored as.
hid_t pick_type(Input& in) {
  switch (in.byte() % 14) {
    case 0: return H5Tcopy(H5T_STD_I8LE);
    case 1: return H5Tcopy(H5T_STD_U16BE);
    case 2: return H5Tcopy(H5T_STD_I32LE);
    case 3: return H5Tcopy(H5T_STD_I64LE);
    case 4: return H5Tcopy(H5T_STD_U64LE);
    case 5: return H5Tcopy(H5T_IEEE_F32BE);
    case 6: return H5Tcopy(H5T_IEEE_F64LE);
    case 7: {
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 1 + in.byte() % 64);
      return t;
    }
    case 8: {
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      return t;
    }
    case 9: {
      hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
      const int members = 1 + in.byte() % 3;
      for (int i = 0; i < members; ++i) {
        std::int8_t v = static_cast<std::int8_t>(in.byte());
        H5Tenum_insert(t, ("M" + std::to_string(i)).c_str(), &v);
      }
      return t;
    }
    case 10: {
      hid_t t = H5Tcreate(H5T_COMPOUND, 12);
      H5Tinsert(t, "a", 0, H5T_NATIVE_INT32);
      H5Tinsert(t, "b", 4, H5T_NATIVE_DOUBLE);
      return t;
    }
    case 11: {
      hsize_t dims = 1 + in.byte() % 4;
      return H5Tarray_create2(H5T_NATIVE_INT64, 1, &dims);
    }
    case 12: {
      hid_t t = H5Tcopy(H5T_IEEE_F32LE);
      H5Tset_fields(t, 15, 10, 5, 0, 10);
      H5Tset_size(t, 2);
      H5Tset_ebias(t, 15);
      return t;
    }
    default: return H5Tcopy(H5T_STD_B8LE);
  }
}

// A dataspace chosen by the input: scalar, null, or up to 3 dimensions. Sizes stay small
// unless the space is only claimed (`claimed`: nothing is written into it).
hid_t pick_space(Input& in, bool claimed) {
  const std::uint8_t kind = in.byte() % 5;
  if (kind == 0) return H5Screate(H5S_SCALAR);
  if (kind == 1) return H5Screate(H5S_NULL);
  const int rank = kind - 1;
  hsize_t dims[3];
  for (int i = 0; i < rank; ++i) {
    const std::uint8_t d = in.byte();
    dims[i] = claimed && d >= 250 ? hsize_t{1} << (20 + d % 24) : d % 17;
  }
  return H5Screate_simple(rank, dims, nullptr);
}

// Fills a buffer for `count` elements of `type` from the input; variable-length strings
// point into `keep`, whose elements stay where they are as it grows.
std::vector<std::uint8_t> pick_data(Input& in, hid_t type, hssize_t count, std::deque<std::string>& keep) {
  const size_t size = H5Tget_size(type);
  std::vector<std::uint8_t> out(static_cast<size_t>(std::max<hssize_t>(count, 1)) * size);
  if (H5Tis_variable_str(type) > 0) {
    for (hssize_t i = 0; i < std::max<hssize_t>(count, 1); ++i) {
      keep.push_back(in.bytes(in.byte() % 32));
      const char* p = keep.back().c_str();
      std::memcpy(out.data() + static_cast<size_t>(i) * size, &p, sizeof p);
    }
    return out;
  }
  for (auto& b : out) b = in.byte();
  return out;
}

void replace_attribute(hid_t file, Input& in) {
  const char* const names[] = {"cohort.step", "cohort.format_version", "cohort.world_size", "cohort.metadata"};
  const char* name = names[in.byte() % 4];
  H5Adelete(file, name);
  if (in.byte() % 8 == 0) return;  // gone
  hid_t type = pick_type(in);
  hid_t space = pick_space(in, false);
  hid_t attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr >= 0) {
    std::deque<std::string> keep;
    auto data = pick_data(in, type, H5Sget_simple_extent_npoints(space), keep);
    H5Awrite(attr, type, data.data());
    H5Aclose(attr);
  }
  H5Sclose(space);
  H5Tclose(type);
}

void replace_dataset(hid_t file, Input& in, const Scratch& dir) {
  const std::string name = std::string("tensors/") + kTensors[in.byte() % 5];
  H5Ldelete(file, name.c_str(), H5P_DEFAULT);
  const std::uint8_t how = in.byte() % 8;
  if (how == 0) return;  // gone
  if (how == 1) {        // a link instead
    switch (in.byte() % 3) {
      case 0: H5Lcreate_soft("/tensors/c", file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT); break;
      case 1: H5Lcreate_external((dir.work / "step-00000003" / "state.h5").c_str(), "/tensors/w", file, name.c_str(),
                                 H5P_DEFAULT, H5P_DEFAULT);
        break;
      default: H5Lcreate_hard(file, "/tensors", file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT); break;
    }
    return;
  }
  const bool write = in.byte() % 4 != 0;
  hid_t type = pick_type(in);
  hid_t space = pick_space(in, !write);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const int rank = H5Sget_simple_extent_ndims(space);
  switch (how) {
    case 3:
    case 4:
      if (rank > 0) {
        std::vector<hsize_t> chunk(static_cast<size_t>(rank), 1 + in.byte() % 8);
        H5Pset_chunk(dcpl, rank, chunk.data());
        const std::uint8_t filters = in.byte();
        if (filters & 1) H5Pset_shuffle(dcpl);
        if (filters & 2) H5Pset_deflate(dcpl, 1 + filters % 9);
        if (filters & 4) H5Pset_fletcher32(dcpl);
        // HDF5's own n-bit filter crashes writing types it does not pack (strings, say):
        // a fault of the crafting, not of the reader under test.
        const H5T_class_t klass = H5Tget_class(type);
        if ((filters & 8) && (klass == H5T_INTEGER || klass == H5T_FLOAT)) H5Pset_nbit(dcpl);
      }
      break;
    case 5: H5Pset_layout(dcpl, H5D_COMPACT); break;
    case 6: H5Pset_external(dcpl, dir.outside.c_str(), in.byte(), 4096); break;
    case 7: {
      hid_t source = H5Scopy(space);
      H5Pset_virtual(dcpl, space, in.byte() % 2 ? "." : dir.outside.c_str(), "/tensors/w", source);
      H5Sclose(source);
      break;
    }
    default: break;
  }
  if (in.byte() % 2) H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
  hid_t dataset = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (dataset >= 0) {
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    // Writing through a virtual dataset that maps itself would recurse in HDF5 for ever.
    if (write && how != 7 && count > 0 && count <= 4096) {
      std::deque<std::string> keep;
      auto data = pick_data(in, type, count, keep);
      H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
    }
    H5Dclose(dataset);
  }
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
}

void flip_data(const fs::path& state, Input& in) {
  hid_t file = H5Fopen(state.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return;
  hid_t dataset = H5Dopen2(file, (std::string("tensors/") + kTensors[in.byte() % 5]).c_str(), H5P_DEFAULT);
  haddr_t at = dataset >= 0 ? H5Dget_offset(dataset) : HADDR_UNDEF;
  if (dataset >= 0) H5Dclose(dataset);
  H5Fclose(file);
  if (at == HADDR_UNDEF) return;
  std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at + in.byte() % 16));
  f.put(static_cast<char>(in.byte()));
}

void edit_manifest(const fs::path& path, Input& in, const fs::path& state) {
  std::ifstream read(path, std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(read), std::istreambuf_iterator<char>()};
  json::Value m;
  try {
    m = json::parse(text);
  } catch (const Error&) {
    return;
  }
  auto* tensors = member(m, "tensors");
  if (!tensors || !tensors->is_array() || tensors->as_array().empty()) return;
  auto& t = tensors->as_array()[in.byte() % tensors->as_array().size()];
  switch (in.byte() % 7) {
    case 0: t.set("name", in.bytes(in.byte() % 8)); break;
    case 1: {
      json::Value shape = json::Value::array();
      const int rank = in.byte() % 4;
      for (int i = 0; i < rank; ++i) shape.push(json::Value(static_cast<std::int64_t>(in.u64() >> (in.byte() % 64))));
      t.set("shape", std::move(shape));
      break;
    }
    case 2: t.set("bytes", static_cast<std::int64_t>(in.u64() >> (in.byte() % 64))); break;
    case 3: t.set("crc32c", static_cast<std::int64_t>(in.u32())); break;
    case 4: t.set("compressed", in.byte() % 2 == 1); break;
    case 5: {
      const char* const dtypes[] = {"float16", "float32", "float64", "int8", "int64", "uint32", "bool"};
      t.set("dtype", dtypes[in.byte() % 7]);
      break;
    }
    default: tensors->as_array().push_back(t); break;
  }
  // Usually the size recorded matches the crafted file, so the crafting itself is read.
  if (in.byte() % 4 != 0) {
    std::error_code ec;
    const auto size = fs::file_size(state, ec);
    auto* files = member(m, "files");
    if (!ec && files && files->is_array() && !files->as_array().empty()) {
      files->as_array()[0].set("bytes", static_cast<std::int64_t>(size));
    }
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << json::write(m, 2);
}

// Keeps manifest.json's record of state.h5's size true after the file was changed.
void record_size(const fs::path& checkpoint) {
  std::ifstream read(checkpoint / "manifest.json", std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(read), std::istreambuf_iterator<char>()};
  read.close();
  try {
    json::Value m = json::parse(text);
    auto* files = member(m, "files");
    if (!files || !files->is_array() || files->as_array().empty()) return;
    files->as_array()[0].set("bytes", static_cast<std::int64_t>(fs::file_size(checkpoint / "state.h5")));
    std::ofstream(checkpoint / "manifest.json", std::ios::binary | std::ios::trunc) << json::write(m, 2);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  scratch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Scratch& dir = scratch();
  std::error_code ec;
  fs::remove_all(dir.work, ec);
  fs::copy(dir.good, dir.work, fs::copy_options::recursive, ec);
  if (ec) abort();
  const fs::path checkpoint = dir.work / "step-00000003";
  const fs::path state = checkpoint / "state.h5";

  Input in(data, size);
  const int edits = 1 + in.byte() % 4;
  for (int i = 0; i < edits && !in.empty(); ++i) {
    const std::uint8_t what = in.byte() % 4;
    if (what == 3) {
      edit_manifest(checkpoint / "manifest.json", in, state);
      continue;
    }
    if (what == 2) {
      flip_data(state, in);
      continue;
    }
    hid_t file = H5Fopen(state.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) continue;
    if (what == 0) replace_attribute(file, in);
    else replace_dataset(file, in, dir);
    H5Fclose(file);
    record_size(checkpoint);
  }
  H5Eclear2(H5E_DEFAULT);

  try {
    (void)verify(checkpoint);
  } catch (const Error&) {
  }
  try {
    const Manifest manifest = read_manifest(checkpoint);
    std::vector<std::byte> bytes;
    for (const auto& t : manifest.tensors) {
      try {
        read_tensor(checkpoint, t, bytes);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  try {
    Options options;
    options.warn = [](const std::string&) {};
    Checkpointer ckpt(dir.work, MPI_COMM_WORLD, options);
    Slots s;
    auto slots = s.slots();
    (void)ckpt.load_latest(slots);
  } catch (const Error&) {
  }
  return 0;
}
