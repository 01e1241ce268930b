// `cohort ckpt export`: a checkpoint as safetensors (PyTorch, Hugging Face) or .npz (NumPy).
// Tensors are read and written one at a time, so memory holds at most the largest tensor.
#include <array>
#include <cstdio>
#include <iostream>
#include <string>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/export.hpp"
#include "checkpoint/dataset.hpp"
#include "checkpoint/hdf5.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "common/progress.hpp"

namespace cohort::checkpoint {

using namespace detail;
namespace po = options::po;

namespace {

// ---- Output: buffered into an AtomicFile, so that OUT is whole or absent ----

class Output {
 public:
  explicit Output(const fs::path& path) : file_(create(path)) {}

  void write(const void* data, std::uint64_t size) {
    const std::string_view bytes(static_cast<const char*>(data), size);
    if (buffer_.size() + size > kBufferBytes) flush();
    if (size >= kBufferBytes) {
      file_.write(bytes);
    } else {
      buffer_.append(bytes);
    }
    offset_ += size;
  }
  void write(std::string_view text) { write(text.data(), text.size()); }
  template <typename T>
  void put(T value) {  // little-endian integers, as both formats want
    write(&value, sizeof value);
  }
  std::uint64_t offset() const { return offset_; }

  void commit() {
    flush();
    file_.commit();
  }

 private:
  // Headers are written a few bytes at a time: gathered, they cost one system call.
  static constexpr std::size_t kBufferBytes = 1 << 20;

  static AtomicFile create(const fs::path& path) {
    try {
      return AtomicFile(path);
    } catch (const Error& e) {
      throw input_error(std::string(e.what()) + "; give an output path in a writable directory");
    }
  }
  void flush() {
    file_.write(buffer_);
    buffer_.clear();
  }

  AtomicFile file_;
  std::string buffer_;
  std::uint64_t offset_ = 0;
};

// ---- safetensors ----

std::string_view safetensors_dtype(DType d) {
  switch (d) {
    case DType::float16: return "F16";
    case DType::bfloat16: return "BF16";
    case DType::float32: return "F32";
    case DType::float64: return "F64";
    case DType::int8: return "I8";
    case DType::int16: return "I16";
    case DType::int32: return "I32";
    case DType::int64: return "I64";
    case DType::uint8: return "U8";
    case DType::uint16: return "U16";
    case DType::uint32: return "U32";
    case DType::uint64: return "U64";
    case DType::bool8: return "BOOL";
  }
  return "";
}

// An 8-byte header length, a JSON header naming each tensor's byte range, then the bytes.
void export_safetensors(const fs::path& checkpoint, const Manifest& m, const fs::path& out_path) {
  Progress progress("ckpt export " + out_path.filename().string(), m.tensor_bytes());
  json::Value header = json::Value::object();
  json::Value meta = json::Value::object();
  meta.set("cohort.step", std::to_string(m.step));
  meta.set("cohort.metadata", json::write(metadata_to_json(m.metadata)));
  header.set("__metadata__", std::move(meta));
  // Appended rather than set: the manifest's names are unique, and looking each one up
  // among those before would take quadratic time over many tensors.
  auto& members = header.as_object();
  std::uint64_t offset = 0;
  for (const auto& t : m.tensors) {
    if (t.name == "__metadata__") {
      throw input_error("tensor '__metadata__' cannot be exported to safetensors, which reserves that name; "
                        "export to npz instead");
    }
    json::Value shape = json::Value::array();
    for (auto d : t.shape) shape.push(json::Value(d));
    json::Value range = json::Value::array();
    range.push(json::Value(offset));
    range.push(json::Value(offset + t.bytes));
    members.emplace_back(t.name, json::Object{{"dtype", json::Value(safetensors_dtype(t.dtype))},
                                              {"shape", std::move(shape)},
                                              {"data_offsets", std::move(range)}});
    offset += t.bytes;
  }
  std::string text = json::write(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  Output out(out_path);
  StateReader state(checkpoint);
  out.put<std::uint64_t>(text.size());
  out.write(text);
  std::vector<std::byte> bytes;
  for (const auto& t : m.tensors) {
    state.read(t, bytes);
    out.write(bytes.data(), bytes.size());
    progress.advance(t.bytes);
  }
  out.commit();
}

// ---- npz: a zip archive of .npy files, stored uncompressed, with zip64 fields ----

std::uint32_t crc32_ieee(std::uint32_t crc, const std::byte* p, std::uint64_t n) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::uint64_t i = 0; i < n; ++i) crc = (crc >> 8) ^ table[(crc ^ static_cast<std::uint8_t>(p[i])) & 0xFF];
  return ~crc;
}

std::string npy_descr(DType d) {
  switch (d) {
    case DType::float16: return "<f2";
    case DType::float32: return "<f4";
    case DType::float64: return "<f8";
    case DType::int8: return "|i1";
    case DType::int16: return "<i2";
    case DType::int32: return "<i4";
    case DType::int64: return "<i8";
    case DType::uint8: return "|u1";
    case DType::uint16: return "<u2";
    case DType::uint32: return "<u4";
    case DType::uint64: return "<u8";
    case DType::bool8: return "|b1";
    case DType::bfloat16: break;  // NumPy has none, and checkpoints hold none
  }
  return "";
}

// The .npy header, version 1.0, padded so the data starts on a 64-byte boundary.
std::string npy_header(const TensorInfo& t) {
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += std::to_string(t.shape[i]) + (i + 1 < t.shape.size() ? ", " : "");
  if (t.shape.size() == 1) shape += ",";
  shape += ")";
  std::string dict = "{'descr': '" + npy_descr(t.dtype) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  std::size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  auto len = static_cast<std::uint16_t>(dict.size());
  out += static_cast<char>(len & 0xFF);
  out += static_cast<char>(len >> 8);
  return out + dict;
}

struct ZipEntry {
  std::string name;
  std::uint32_t crc;
  std::uint64_t size;
  std::uint64_t offset;
};

// Zip64 sizes everywhere: tensors over 4 GiB are common, and NumPy reads zip64.
constexpr std::uint32_t kMax32 = 0xFFFFFFFFu;

void write_local_header(Output& out, const ZipEntry& e) {
  out.put<std::uint32_t>(0x04034b50);
  out.put<std::uint16_t>(45);  // version needed: zip64
  out.put<std::uint16_t>(0x0800);  // UTF-8 names
  out.put<std::uint16_t>(0);   // stored
  out.put<std::uint16_t>(0);   // time
  out.put<std::uint16_t>(0x21);  // date: 1980-01-01
  out.put<std::uint32_t>(e.crc);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint16_t>(static_cast<std::uint16_t>(e.name.size()));
  out.put<std::uint16_t>(20);  // zip64 extra field
  out.write(e.name);
  out.put<std::uint16_t>(0x0001);
  out.put<std::uint16_t>(16);
  out.put<std::uint64_t>(e.size);
  out.put<std::uint64_t>(e.size);
}

void write_directory_entry(Output& out, const ZipEntry& e) {
  out.put<std::uint32_t>(0x02014b50);
  out.put<std::uint16_t>(45);  // made by
  out.put<std::uint16_t>(45);  // needed
  out.put<std::uint16_t>(0x0800);
  out.put<std::uint16_t>(0);
  out.put<std::uint16_t>(0);
  out.put<std::uint16_t>(0x21);
  out.put<std::uint32_t>(e.crc);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint16_t>(static_cast<std::uint16_t>(e.name.size()));
  out.put<std::uint16_t>(28);  // zip64 extra field
  out.put<std::uint16_t>(0);   // comment
  out.put<std::uint16_t>(0);   // disk
  out.put<std::uint16_t>(0);   // internal attributes
  out.put<std::uint32_t>(0);   // external attributes
  out.put<std::uint32_t>(kMax32);
  out.write(e.name);
  out.put<std::uint16_t>(0x0001);
  out.put<std::uint16_t>(24);
  out.put<std::uint64_t>(e.size);
  out.put<std::uint64_t>(e.size);
  out.put<std::uint64_t>(e.offset);
}

// Zip64 end of central directory record and its locator, then the classic end record.
void write_directory_end(Output& out, std::uint64_t entries, std::uint64_t directory_start) {
  const std::uint64_t directory_end = out.offset();
  out.put<std::uint32_t>(0x06064b50);
  out.put<std::uint64_t>(44);
  out.put<std::uint16_t>(45);
  out.put<std::uint16_t>(45);
  out.put<std::uint32_t>(0);
  out.put<std::uint32_t>(0);
  out.put<std::uint64_t>(entries);
  out.put<std::uint64_t>(entries);
  out.put<std::uint64_t>(directory_end - directory_start);
  out.put<std::uint64_t>(directory_start);
  out.put<std::uint32_t>(0x07064b50);
  out.put<std::uint32_t>(0);
  out.put<std::uint64_t>(directory_end);
  out.put<std::uint32_t>(1);
  out.put<std::uint32_t>(0x06054b50);
  out.put<std::uint16_t>(0);
  out.put<std::uint16_t>(0);
  out.put<std::uint16_t>(0xFFFF);
  out.put<std::uint16_t>(0xFFFF);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint32_t>(kMax32);
  out.put<std::uint16_t>(0);
}

// A zip of one stored .npy per tensor, as numpy.savez writes.
void export_npz(const fs::path& checkpoint, const Manifest& m, const fs::path& out_path) {
  Progress progress("ckpt export " + out_path.filename().string(), m.tensor_bytes());
  Output out(out_path);
  StateReader state(checkpoint);
  std::vector<ZipEntry> entries;
  std::vector<std::byte> bytes;
  for (const auto& t : m.tensors) {
    state.read(t, bytes);
    std::string header = npy_header(t);
    ZipEntry e{t.name + ".npy", 0, header.size() + bytes.size(), out.offset()};
    e.crc = crc32_ieee(crc32_ieee(0, reinterpret_cast<const std::byte*>(header.data()), header.size()), bytes.data(),
                       bytes.size());
    write_local_header(out, e);
    out.write(header);
    out.write(bytes.data(), bytes.size());
    entries.push_back(std::move(e));
    progress.advance(t.bytes);
  }
  const std::uint64_t directory_start = out.offset();
  for (const auto& e : entries) write_directory_entry(out, e);
  write_directory_end(out, entries.size(), directory_start);
  out.commit();
}

}  // namespace

int export_command(const std::vector<std::string>& args) {
  std::string to;
  options::Parser parser(
      {"ckpt export",
       {"PATH --to safetensors|npz OUT"},
       "Writes a checkpoint's tensors to one file that PyTorch (safetensors) or NumPy (.npz)\n"
       "reads directly; every tensor's checksum is checked on the way. PATH is a step-XXXXXXXX\n"
       "directory, or a checkpoint directory for its newest checkpoint. OUT is written under a\n"
       "temporary name and renamed when complete.",
       {"cohort ckpt export /scratch/run1/ckpt/step-00001000 --to safetensors model.safetensors",
        "python3 -c \"import numpy; print(numpy.load('model.npz')['model.w'].shape)\""}});
  parser.add()("to", po::value(&to)->required()->value_name("FORMAT"), "safetensors or npz");
  parser.operands(-1);
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const std::vector<std::string>& paths = parsed->operands;
  if (paths.size() != 2) {
    throw parser.usage_error("expected a checkpoint PATH and an output file OUT, got " + std::to_string(paths.size()) +
                             " path(s)");
  }
  if (to != "safetensors" && to != "npz") {
    throw input_error("--to " + to + ": expected safetensors or npz");
  }
  const fs::path checkpoint = resolve_checkpoint(paths[0]);
  Manifest m = read_manifest(checkpoint);
  if (to == "safetensors") export_safetensors(checkpoint, m, paths[1]);
  else export_npz(checkpoint, m, paths[1]);
  std::cout << "exported " << m.tensors.size() << " tensor(s) of " << checkpoint.string() << " to " << paths[1]
            << "\n";
  return 0;
}

}  // namespace cohort::checkpoint
