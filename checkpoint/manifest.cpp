// manifest.json: what a checkpoint holds, as JSON and back, and the checks on tensors'
// names and shapes that it shares with saving and loading.
#include "checkpoint/manifest.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
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

namespace {

json::Value shape_json(const std::vector<std::uint64_t>& shape) {
  json::Value out = json::Value::array();
  for (auto d : shape) out.push(json::Value(d));
  return out;
}

json::Value piece_json(const Piece& p) {
  json::Value out = json::Object{{"file", json::Value(p.file)}, {"row", json::Value(p.row)},
                                 {"shape", shape_json(p.shape)}};
  if (p.offset) out.set("offset", *p.offset);
  out.set("bytes", p.bytes);
  out.set("crc32c", p.crc32c);
  return out;
}

}  // namespace

json::Value manifest_to_json(const Manifest& m) {
  json::Value v = json::Value::object();
  v.set("format", "cohort-checkpoint");
  v.set("format_version", m.format_version);
  v.set("step", m.step);
  v.set("time", m.time);
  v.set("world_size", m.world_size);
  json::Value files = json::Value::array();
  if (m.files.empty()) {
    files.push(json::Object{{"name", json::Value(kStateFile)}, {"bytes", json::Value(m.state_bytes)}});
  }
  for (const auto& f : m.files) files.push(json::Object{{"name", json::Value(f.name)}, {"bytes", json::Value(f.bytes)}});
  v.set("files", std::move(files));
  json::Value tensors = json::Value::array();
  for (const auto& t : m.tensors) {
    json::Value tensor = json::Object{{"name", json::Value(t.name)},
                                      {"dtype", json::Value(to_string(t.dtype))},
                                      {"shape", shape_json(t.shape)},
                                      {"sharding", json::Value(to_string(t.sharding))},
                                      {"bytes", json::Value(t.bytes)},
                                      {"crc32c", json::Value(t.crc32c)},
                                      {"compressed", json::Value(t.compressed)}};
    if (m.format_version >= 2) {
      json::Value pieces = json::Value::array();
      for (const auto& p : t.pieces) pieces.push(piece_json(p));
      tensor.set("pieces", std::move(pieces));
    }
    tensors.push(std::move(tensor));
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
    if (version < 1 || version > kFormatVersion) {
      throw Error("version " + std::to_string(version) + " is not supported (this cohort reads 1 to " +
                  std::to_string(kFormatVersion) + "); use a newer cohort");
    }
    m.format_version = static_cast<int>(version);
    m.step = get(v, "step", "step").as_int();
    m.time = get(v, "time", "time").as_string();
    m.world_size = static_cast<int>(get(v, "world_size", "world_size").as_int());
  }

  // Version 1 lists state.h5; version 2 also the rank files, each once.
  void read_files(const json::Value& v, Manifest& m) {
    const auto& files = get(v, "files", "files").as_array();
    std::optional<std::uint64_t> state_bytes;
    for (size_t i = 0; i < files.size(); ++i) {
      std::string at = "files[" + std::to_string(i) + "]";
      FileInfo file{get(files[i], "name", at + ".name").as_string(), 0};
      if (m.format_version >= 2 && file.name != kStateFile && !is_rank_file_name(file.name)) {
        throw Error("\"" + file.name + "\" is neither " + std::string(kStateFile) + " nor a rank file (rank-NNNNN.h5)");
      }
      auto bytes = get(files[i], "bytes", at + ".bytes").as_int();
      if (bytes < 0) throw Error("must not be negative");
      file.bytes = static_cast<std::uint64_t>(bytes);
      if (file_bytes_.count(file.name)) throw Error("lists \"" + file.name + "\" twice");
      file_bytes_[file.name] = file.bytes;
      if (file.name == kStateFile) state_bytes = file.bytes;
      m.files.push_back(std::move(file));
    }
    field_ = "files";
    if (!state_bytes) throw Error(std::string("does not list ") + std::string(kStateFile));
    m.state_bytes = *state_bytes;
  }

  std::vector<std::uint64_t> read_shape(const json::Value& v, const std::string& at) {
    std::vector<std::uint64_t> shape;
    for (const auto& d : get(v, "shape", at).as_array()) {
      if (d.as_int() < 0) throw Error("dimensions must not be negative");
      shape.push_back(static_cast<std::uint64_t>(d.as_int()));
    }
    return shape;
  }

  std::uint32_t read_crc(const json::Value& v, const std::string& at) {
    auto crc = get(v, "crc32c", at).as_int();
    if (crc < 0 || crc > 0xFFFFFFFFll) throw Error("not a 32-bit checksum");
    return static_cast<std::uint32_t>(crc);
  }

  TensorInfo read_tensor(const json::Value& t, const std::string& at, int version) {
    TensorInfo info;
    info.name = get(t, "name", at + ".name").as_string();
    const auto& dtype = get(t, "dtype", at + ".dtype").as_string();
    info.dtype = parse_dtype(dtype, stored_dtypes());
    if (to_string(info.dtype) != dtype) {
      // What people type is for commands; a file names types one way.
      throw Error("\"" + dtype + "\" is not NumPy's name of a type (that is \"" +
                  std::string(to_string(info.dtype)) + "\"), which a manifest gives");
    }
    info.shape = read_shape(t, at + ".shape");
    const auto& sharding = get(t, "sharding", at + ".sharding").as_string();
    if (sharding == "replicated") info.sharding = Sharding::replicated;
    else if (sharding == "rows") info.sharding = Sharding::rows;
    else throw Error("\"" + sharding + "\" is neither \"replicated\" nor \"rows\"");
    info.bytes = read_bytes(t, at + ".bytes", info.shape, info.dtype);
    info.crc32c = read_crc(t, at + ".crc32c");
    if (const auto* c = t.find("compressed")) info.compressed = c->as_bool();
    field_ = at + ".name";
    check_tensor_name(info.name);
    if (version >= 2) read_pieces(t, at, info);
    return info;
  }

 private:
  // A byte count, which must be what `shape` of `dtype` takes.
  std::uint64_t read_bytes(const json::Value& v, const std::string& at, const std::vector<std::uint64_t>& shape,
                           DType dtype) {
    auto bytes = get(v, "bytes", at).as_int();
    std::uint64_t expected = 0;
    if (__builtin_mul_overflow(element_count(shape), size_of(dtype), &expected)) {
      throw Error("shape " + shape_text(shape) + " of " + std::string(to_string(dtype)) + " is more than 2^64 bytes");
    }
    if (bytes < 0 || static_cast<std::uint64_t>(bytes) != expected) throw Error("does not match the dtype and shape");
    return expected;
  }

  // The pieces must follow each other in row order and cover the tensor exactly, each in
  // a listed file and, when uncompressed, within that file's size.
  void read_pieces(const json::Value& t, const std::string& at, TensorInfo& info) {
    const auto& pieces = get(t, "pieces", at + ".pieces").as_array();
    std::uint64_t next_row = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const std::string pat = at + ".pieces[" + std::to_string(i) + "]";
      Piece p;
      p.file = get(pieces[i], "file", pat + ".file").as_string();
      auto file = file_bytes_.find(p.file);
      if (file == file_bytes_.end()) throw Error("names \"" + p.file + "\", which \"files\" does not list");
      auto row = get(pieces[i], "row", pat + ".row").as_int();
      p.shape = read_shape(pieces[i], pat + ".shape");
      p.bytes = read_bytes(pieces[i], pat + ".bytes", p.shape, info.dtype);
      p.crc32c = read_crc(pieces[i], pat + ".crc32c");
      field_ = pat + ".shape";
      const bool fits = p.shape.size() == info.shape.size() &&
                        (p.shape.empty() || (p.shape[0] > 0 && std::equal(p.shape.begin() + 1, p.shape.end(),
                                                                          info.shape.begin() + 1)));
      if (!fits) throw Error(shape_text(p.shape) + " is no block of rows of " + shape_text(info.shape));
      field_ = pat + ".row";
      if (row < 0 || static_cast<std::uint64_t>(row) != next_row) {
        throw Error("is " + std::to_string(row) + ", expected " + std::to_string(next_row) +
                    " (pieces follow each other in row order)");
      }
      p.row = next_row;
      next_row += p.shape.empty() ? 1 : p.shape[0];
      if (const auto* offset = pieces[i].find("offset")) {
        field_ = pat + ".offset";
        auto value = offset->as_int();
        if (value < 0 || static_cast<std::uint64_t>(value) > file->second ||
            file->second - static_cast<std::uint64_t>(value) < p.bytes) {
          throw Error("lies outside " + p.file + " (" + std::to_string(file->second) + " bytes)");
        }
        p.offset = static_cast<std::uint64_t>(value);
      } else if (!info.compressed) {
        field_ = pat;
        throw Error("has no offset, which an uncompressed piece gives");
      }
      info.pieces.push_back(std::move(p));
    }
    field_ = at + ".pieces";
    const std::uint64_t rows = info.shape.empty() ? 1 : info.shape[0];
    if (info.bytes > 0 ? next_row != rows : !pieces.empty()) {
      throw Error("cover rows 0 to " + std::to_string(next_row) + " of a tensor of " +
                  (info.bytes > 0 ? std::to_string(rows) + " rows" : "no bytes, which has none"));
    }
  }

  std::map<std::string, std::uint64_t> file_bytes_;
  std::string field_ = "(document)";
};

}  // namespace

Manifest manifest_from_json(const json::Value& v, const std::string& source) {
  ManifestReader reader;
  try {
    Manifest m;
    if (!v.is_object()) throw Error("expected a JSON object");
    reader.read_header(v, m);
    reader.read_files(v, m);
    const auto& tensors = reader.get(v, "tensors", "tensors").as_array();
    // Ordered rather than hashed: a crafted manifest cannot make lookups degrade.
    std::set<std::string> names;
    for (size_t i = 0; i < tensors.size(); ++i) {
      TensorInfo info = reader.read_tensor(tensors[i], "tensors[" + std::to_string(i) + "]", m.format_version);
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
