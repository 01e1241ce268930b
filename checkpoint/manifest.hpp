// checkpoint/manifest.hpp — private to checkpoint/: manifest.json as JSON and back, and the
// checks on tensors' names and shapes it shares with saving and loading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "common/json.hpp"

namespace cohort::checkpoint::detail {

// What save() writes; read_manifest() reads this and every earlier version.
inline constexpr int kFormatVersion = 2;

json::Value metadata_to_json(const Metadata& m);
Metadata metadata_from_json(const json::Value& v);
json::Value manifest_to_json(const Manifest& m);
// Throws cohort::Error naming `source` and the field when the document is malformed.
Manifest manifest_from_json(const json::Value& v, const std::string& source);

// Tensors' shapes and names, as the manifest, saves and loads check them.
std::uint64_t element_count(const std::vector<std::uint64_t>& shape);
std::string shape_text(const std::vector<std::uint64_t>& shape);  // "[8, 4]"
void check_tensor_name(const std::string& name);                   // throws input_error

// A checksum as messages show it: "0x1a2b3c4d".
std::string hex32(std::uint32_t crc);

}  // namespace cohort::checkpoint::detail
