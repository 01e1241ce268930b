// manifest.json: what a checkpoint holds, as JSON and back, and the checks on tensors'
// names and shapes that it shares with saving and loading.
#include "checkpoint/manifest.hpp"

#include <cstdio>
#include <optional>
#include <set>
#include <utility>

#include "checkpoint/layout.hpp"
#include "common/error.hpp"

namespace cohort::checkpoint::detail {

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

namespace {

// Reads a manifest field by field, remembering which field it is at for the message of
// whatever fails there.
class ManifestReader {
 public:
  const std::string& field() const { return field_; }
  void at(std::string field) { field_ = std::move(field); }

  const json::Value& get(const json::Value& obj, const std::string& key, const std::string& path) {
    field_ = path;
    return obj.at(key);
  }

  void read_header(const json::Value& v, Manifest& m) {
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
  }

  std::uint64_t read_state_bytes(const json::Value& v) {
    const auto& files = get(v, "files", "files").as_array();
    std::optional<std::uint64_t> state_bytes;
    for (size_t i = 0; i < files.size(); ++i) {
      std::string at = "files[" + std::to_string(i) + "]";
      if (get(files[i], "name", at + ".name").as_string() == kStateFile) {
        auto bytes = get(files[i], "bytes", at + ".bytes").as_int();
        if (bytes < 0) throw Error("must not be negative");
        state_bytes = static_cast<std::uint64_t>(bytes);
      }
    }
    field_ = "files";
    if (!state_bytes) throw Error(std::string("does not list ") + std::string(kStateFile));
    return *state_bytes;
  }

  TensorInfo read_tensor(const json::Value& t, const std::string& at) {
    TensorInfo info;
    info.name = get(t, "name", at + ".name").as_string();
    const auto& dtype = get(t, "dtype", at + ".dtype").as_string();
    info.dtype = parse_dtype(dtype, stored_dtypes());
    if (to_string(info.dtype) != dtype) {
      // What people type is for commands; a file names types one way.
      throw Error("\"" + dtype + "\" is not NumPy's name of a type (that is \"" +
                  std::string(to_string(info.dtype)) + "\"), which a manifest gives");
    }
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
    field_ = at + ".bytes";
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
    field_ = at + ".name";
    check_tensor_name(info.name);
    return info;
  }

 private:
  std::string field_ = "(document)";
};

}  // namespace

Manifest manifest_from_json(const json::Value& v, const std::string& source) {
  ManifestReader reader;
  try {
    Manifest m;
    if (!v.is_object()) throw Error("expected a JSON object");
    reader.read_header(v, m);
    m.state_bytes = reader.read_state_bytes(v);
    const auto& tensors = reader.get(v, "tensors", "tensors").as_array();
    // Ordered rather than hashed: a crafted manifest cannot make lookups degrade.
    std::set<std::string> names;
    for (size_t i = 0; i < tensors.size(); ++i) {
      TensorInfo info = reader.read_tensor(tensors[i], "tensors[" + std::to_string(i) + "]");
      if (!names.insert(info.name).second) throw Error("tensor '" + info.name + "' is listed twice");
      m.tensors.push_back(std::move(info));
    }
    if (const auto* meta = v.find("metadata")) {
      reader.at("metadata");
      m.metadata = metadata_from_json(*meta);
    }
    return m;
  } catch (const Error& e) {
    throw Error(source + ": " + reader.field() + ": " + e.what());
  }
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

std::string hex32(std::uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", crc);
  return buf;
}

}  // namespace cohort::checkpoint::detail
