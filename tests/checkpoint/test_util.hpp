// Helpers shared by checkpoint/'s tests: scratch directories and deliberate damage.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/json.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::checkpoint::testing {

using ::cohort::testing::TempDir;

// Values that differ per step and per element, so a load from the wrong step shows.
inline float value_at(std::int64_t step, std::uint64_t index) {
  return static_cast<float>(step) * 1000.0f + static_cast<float>(index % 997) * 0.5f;
}

inline std::vector<float> pattern(std::int64_t step, std::uint64_t count, std::uint64_t first = 0) {
  std::vector<float> v(count);
  for (std::uint64_t i = 0; i < count; ++i) v[i] = value_at(step, first + i);
  return v;
}

// Byte offset of a contiguous dataset's data in `file`.
inline std::uint64_t data_offset(const std::filesystem::path& file_path, const std::string& tensor) {
  hid_t file = H5Fopen(file_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot open " + file_path.string());
  hid_t dataset = H5Dopen2(file, ("tensors/" + tensor).c_str(), H5P_DEFAULT);
  haddr_t offset = dataset >= 0 ? H5Dget_offset(dataset) : HADDR_UNDEF;
  if (dataset >= 0) H5Dclose(dataset);
  H5Fclose(file);
  if (offset == HADDR_UNDEF) throw std::runtime_error("no contiguous dataset " + tensor);
  return offset;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The file holding byte `index` of `tensor`'s stored data, and where in it: by the
// manifest's pieces (format version 2), or in state.h5 (version 1).
inline std::pair<std::filesystem::path, std::uint64_t> locate_byte(const std::filesystem::path& checkpoint,
                                                                   const std::string& tensor, std::uint64_t index) {
  auto manifest = json::parse(read_file(checkpoint / "manifest.json"));
  if (manifest.at("format_version").as_int() == 1) {
    return {checkpoint / "state.h5", data_offset(checkpoint / "state.h5", tensor) + index};
  }
  for (const auto& t : manifest.at("tensors").as_array()) {
    if (t.at("name").as_string() != tensor) continue;
    for (const auto& p : t.at("pieces").as_array()) {
      auto bytes = static_cast<std::uint64_t>(p.at("bytes").as_int());
      if (index < bytes) {
        return {checkpoint / p.at("file").as_string(), static_cast<std::uint64_t>(p.at("offset").as_int()) + index};
      }
      index -= bytes;
    }
  }
  throw std::runtime_error("no byte " + std::to_string(index) + " of tensor " + tensor);
}

// Inverts one bit of byte `index` of `tensor`'s stored data.
inline void flip_byte(const std::filesystem::path& checkpoint, const std::string& tensor, std::uint64_t index) {
  auto [path, offset] = locate_byte(checkpoint, tensor, index);
  auto at = static_cast<std::streamoff>(offset);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.get(c);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(at);
  f.put(c);
  if (!f) throw std::runtime_error("cannot modify " + path.string());
}

inline void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// Rewrites `checkpoint`'s manifest through `edit`.
template <typename F>
void edit_manifest(const std::filesystem::path& checkpoint, F&& edit) {
  auto manifest = json::parse(read_file(checkpoint / "manifest.json"));
  edit(manifest);
  write_file(checkpoint / "manifest.json", json::write(manifest, 2));
}

// A manifest member by key, for editing in place.
inline json::Value& member(json::Value& object, const std::string& key) {
  for (auto& [k, v] : object.as_object()) {
    if (k == key) return v;
  }
  throw std::runtime_error("no member " + key);
}

// Changes `checkpoint`'s file `name` through `edit` (given the open file), then records the
// file's new size in the manifest, so that what is tested is the crafted content rather
// than the size check.
template <typename F>
void craft_file(const std::filesystem::path& checkpoint, const std::string& name, F&& edit) {
  auto path = checkpoint / name;
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot open " + path.string());
  edit(file);
  if (H5Fclose(file) < 0) throw std::runtime_error("cannot close " + path.string());
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(path));
  edit_manifest(checkpoint, [&](json::Value& m) {
    for (auto& f : member(m, "files").as_array()) {
      if (f.at("name").as_string() == name) f.set("bytes", size);
    }
  });
}

// The same for state.h5: its root attributes, and in format version 2 its index.
template <typename F>
void craft_state(const std::filesystem::path& checkpoint, F&& edit) {
  craft_file(checkpoint, "state.h5", std::forward<F>(edit));
}

}  // namespace cohort::checkpoint::testing
