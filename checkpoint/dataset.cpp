// A tensor's dataset in state.h5, and the checks it passes before any of it is read.
#include "checkpoint/dataset.hpp"

#include <algorithm>
#include <iterator>

#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "common/error.hpp"

namespace cohort::checkpoint::detail {

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
void check_hard_link(hid_t file, const std::string& path, const std::string& what, const std::string& file_name) {
  H5L_info_t link{};
  if (H5Lget_info(file, path.c_str(), &link, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(what + ": " + file_name + " has no /" + path);
  }
  if (link.type != H5L_TYPE_HARD) {
    throw Error(what + ": /" + path + " is " + link_kind(link.type) + ", not a dataset stored in " + file_name +
                "; cohort does not follow links");
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
void check_storage(hid_t file, hid_t dataset, const TensorInfo& info, const std::string& what,
                   const std::string& state) {
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

TensorDataset open_indexed(hid_t file, const TensorInfo& info, std::string_view file_name) {
  const std::string what = "tensor '" + info.name + "'";
  const std::string name(file_name);
  check_hard_link(file, "tensors", what, name);
  check_hard_link(file, "tensors/" + info.name, what, name);
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
  return t;
}

TensorDataset open_tensor(hid_t file, const TensorInfo& info, std::string_view file_name) {
  TensorDataset t = open_indexed(file, info, file_name);
  check_storage(file, t.dataset.get(), info, "tensor '" + info.name + "'", std::string(file_name));
  return t;
}

}  // namespace cohort::checkpoint::detail
