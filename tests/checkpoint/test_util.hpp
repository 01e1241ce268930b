// Helpers shared by checkpoint/'s tests: scratch directories and deliberate damage.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
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

// Byte offset of a contiguous dataset's data in state.h5.
inline std::uint64_t data_offset(const std::filesystem::path& state, const std::string& tensor) {
  hid_t file = H5Fopen(state.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot open " + state.string());
  hid_t dataset = H5Dopen2(file, ("tensors/" + tensor).c_str(), H5P_DEFAULT);
  haddr_t offset = dataset >= 0 ? H5Dget_offset(dataset) : HADDR_UNDEF;
  if (dataset >= 0) H5Dclose(dataset);
  H5Fclose(file);
  if (offset == HADDR_UNDEF) throw std::runtime_error("no contiguous dataset " + tensor);
  return offset;
}

// Inverts one bit of byte `index` of `tensor`'s stored data.
inline void flip_byte(const std::filesystem::path& checkpoint, const std::string& tensor, std::uint64_t index) {
  auto state = checkpoint / "state.h5";
  auto at = static_cast<std::streamoff>(data_offset(state, tensor) + index);
  std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.get(c);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(at);
  f.put(c);
  if (!f) throw std::runtime_error("cannot modify " + state.string());
}

inline void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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

// Changes `checkpoint`'s state.h5 through `edit` (given the open file), then records the
// file's new size in the manifest, so that what is tested is the crafted content rather
// than the size check.
template <typename F>
void craft_state(const std::filesystem::path& checkpoint, F&& edit) {
  auto state = checkpoint / "state.h5";
  hid_t file = H5Fopen(state.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot open " + state.string());
  edit(file);
  if (H5Fclose(file) < 0) throw std::runtime_error("cannot close " + state.string());
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(state));
  edit_manifest(checkpoint, [&](json::Value& m) { member(m, "files").as_array()[0].set("bytes", size); });
}

}  // namespace cohort::checkpoint::testing
