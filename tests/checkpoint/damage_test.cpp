// Checkpoints damaged or crafted on purpose. Each is reported as damage that names what is
// wrong, found without reading more than the file holds, and load_latest() falls back past
// it to the previous good checkpoint; nothing crashes, hangs or reads outside the checkpoint.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/crc32c.hpp"
#include "common/error.hpp"
#include "common/json.hpp"
#include "test_util.hpp"

namespace cohort::checkpoint {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr std::uint64_t kRows = 4, kCols = 8;

// Two good checkpoints, steps 1 and 2, each of "w" (float32 [4, 8], sharded by rows) and
// "lr" (a float64 scalar); tests damage step 2 and expect step 1 back.
class Damage : public ::testing::Test {
 protected:
  void SetUp() override {
    Options options;
    options.warn = [](const std::string&) {};
    ckpt_ = std::make_unique<Checkpointer>(tmp_ / "ckpt", MPI_COMM_WORLD, options);
    save(1);
    save(2);
  }

  void save(std::int64_t step) {
    auto w = testing::pattern(step, kRows * kCols);
    double lr = static_cast<double>(step);
    ckpt_->save(step, State{{{"w", DType::float32, {kRows, kCols}, Sharding::rows, w.data()},
                             {"lr", DType::float64, {}, Sharding::replicated, &lr}},
                            {}});
  }

  fs::path newest() const { return checkpoint_path(tmp_ / "ckpt", 2); }

  // load_latest() must fall back to step 1; returns why it skipped step 2.
  std::string expect_fallback() {
    std::vector<float> w(kRows * kCols);
    double lr = 0;
    std::vector<TensorSlot> slots{{"w", DType::float32, {kRows, kCols}, Sharding::rows, w.data()},
                                  {"lr", DType::float64, {}, Sharding::replicated, &lr}};
    std::optional<LoadResult> r;
    try {
      r = ckpt_->load_latest(slots);
    } catch (const Error& e) {
      ADD_FAILURE() << "load_latest threw instead of falling back: " << e.what();
      return "";
    }
    if (!r) {
      ADD_FAILURE() << "load_latest found no checkpoint";
      return "";
    }
    EXPECT_EQ(r->step, 1);
    EXPECT_EQ(w, testing::pattern(1, kRows * kCols));
    EXPECT_EQ(lr, 1.0);
    if (r->skipped.size() != 1u) {
      ADD_FAILURE() << r->skipped.size() << " checkpoints skipped, expected step 2 alone";
      return "";
    }
    EXPECT_EQ(r->skipped[0].step, 2);
    return r->skipped[0].reason;
  }

  // verify() of step 2 must fail; returns its problems as one line.
  std::string expect_verify_fails() {
    VerifyReport report;
    try {
      report = verify(newest());
    } catch (const Error& e) {
      ADD_FAILURE() << "verify threw instead of reporting damage: " << e.what();
      return "";
    }
    EXPECT_FALSE(report.ok());
    std::string text;
    for (const auto& p : report.problems) text += (p.tensor.empty() ? "" : "tensor '" + p.tensor + "': ") + p.message + "; ";
    return text;
  }

  TempDir tmp_;
  std::unique_ptr<Checkpointer> ckpt_;
};

#define EXPECT_MENTIONS(text, fragment) \
  EXPECT_NE(std::string(text).find(fragment), std::string::npos) << "'" << (text) << "' lacks '" << (fragment) << "'"

// Replaces root attribute cohort.step of `file` with one of `type` over `space`, holding `data`.
void replace_step_attribute(hid_t file, hid_t type, hid_t space, const void* data) {
  H5Adelete(file, "cohort.step");
  hid_t attr = H5Acreate2(file, "cohort.step", type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (data) H5Awrite(attr, type, data);
  H5Aclose(attr);
}

TEST_F(Damage, AnArrayWhereTheStepAttributeBelongsIsDamageNotAStackOverwrite) {
  testing::craft_state(newest(), [](hid_t file) {
    std::vector<std::int64_t> steps(4096, 2);
    hsize_t n = steps.size();
    hid_t space = H5Screate_simple(1, &n, nullptr);
    replace_step_attribute(file, H5T_NATIVE_INT64, space, steps.data());
    H5Sclose(space);
  });
  const std::string problems = expect_verify_fails();
  EXPECT_MENTIONS(problems, "state.h5");
  EXPECT_MENTIONS(problems, "cohort.step");
  EXPECT_MENTIONS(problems, "4096 elements");
  EXPECT_MENTIONS(problems, "expected a single 64-bit integer");
  EXPECT_MENTIONS(expect_fallback(), "cohort.step");
}

TEST_F(Damage, AStepAttributeOfAnotherKindIsDamage) {
  struct Case {
    const char* name;
    const char* expected_fragment;
    void (*craft)(hid_t file);
  };
  const Case cases[] = {
      {"string", "a string",
       [](hid_t file) {
         hid_t type = H5Tcopy(H5T_C_S1);
         H5Tset_size(type, 8);
         hid_t space = H5Screate(H5S_SCALAR);
         replace_step_attribute(file, type, space, "2\0\0\0\0\0\0\0");
         H5Sclose(space);
         H5Tclose(type);
       }},
      {"float", "a floating-point number",
       [](hid_t file) {
         double two = 2;
         hid_t space = H5Screate(H5S_SCALAR);
         replace_step_attribute(file, H5T_NATIVE_DOUBLE, space, &two);
         H5Sclose(space);
       }},
      {"empty", "no elements",
       [](hid_t file) {
         hid_t space = H5Screate(H5S_NULL);
         replace_step_attribute(file, H5T_NATIVE_INT64, space, nullptr);
         H5Sclose(space);
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    save(2);
    testing::craft_state(newest(), c.craft);
    const std::string problems = expect_verify_fails();
    EXPECT_MENTIONS(problems, "cohort.step");
    EXPECT_MENTIONS(problems, c.expected_fragment);
    EXPECT_MENTIONS(expect_fallback(), "cohort.step");
  }
}

TEST_F(Damage, AManifestNamingATensorTheFileLacksFallsBack) {
  // Valid JSON, consistent in itself, but "w" became "v", which state.h5 does not hold.
  testing::edit_manifest(newest(), [](json::Value& m) {
    testing::member(m, "tensors").as_array()[0].set("name", "v");
  });
  EXPECT_MENTIONS(expect_verify_fails(), "tensor 'v'");
  const std::string reason = expect_fallback();
  EXPECT_MENTIONS(reason, "'v'");
  EXPECT_MENTIONS(reason, "state.h5");
}

TEST_F(Damage, AManifestOfAnotherFormatOrAnUnknownVersionIsRefused) {
  struct Case {
    const char* field;
    json::Value value;
    const char* fragment;
  };
  for (const auto& c : {Case{"format", json::Value("safetensors"), "expected \"cohort-checkpoint\""},
                        Case{"format_version", json::Value(3), "version 3 is not supported (this cohort reads 1 to 2)"},
                        Case{"format_version", json::Value(0), "version 0 is not supported"}}) {
    SCOPED_TRACE(std::string(c.field) + " changed");
    testing::edit_manifest(newest(), [&](json::Value& m) { m.set(c.field, c.value); });
    EXPECT_THROW(read_manifest(newest()), Error);
    EXPECT_MENTIONS(expect_verify_fails(), c.fragment);
    EXPECT_MENTIONS(expect_fallback(), c.fragment);
    testing::edit_manifest(newest(), [&](json::Value& m) {
      m.set("format", "cohort-checkpoint");
      m.set("format_version", 2);
    });
  }
}

TEST_F(Damage, AManifestDtypeThatIsNotNumpysNameOfAStoredTypeIsDamage) {
  struct Case {
    const char* dtype;
    const char* fragment;
  };
  for (const auto& c : {Case{"float8", "unknown dtype 'float8'"},
                        Case{"bfloat16", "dtype 'bfloat16' is not accepted here (use float16, float32,"},
                        Case{"f32", "\"f32\" is not NumPy's name of a type"}}) {
    SCOPED_TRACE(c.dtype);
    testing::edit_manifest(newest(), [&](json::Value& m) {
      testing::member(m, "tensors").as_array()[0].set("dtype", c.dtype);
    });
    EXPECT_THROW(read_manifest(newest()), Error);
    EXPECT_MENTIONS(expect_verify_fails(), c.fragment);
    EXPECT_MENTIONS(expect_fallback(), c.fragment);
    testing::edit_manifest(newest(), [&](json::Value& m) {
      testing::member(m, "tensors").as_array()[0].set("dtype", "float32");
    });
  }
}

TEST_F(Damage, ATensorMissingFromTheFileFallsBack) {
  testing::craft_state(newest(), [](hid_t file) { H5Ldelete(file, "tensors/w", H5P_DEFAULT); });
  EXPECT_MENTIONS(expect_verify_fails(), "tensor 'w'");
  EXPECT_MENTIONS(expect_fallback(), "tensor 'w'");
}

TEST_F(Damage, AManifestThatIsNoRegularFileIsDamageNotAHang) {
  const fs::path manifest = newest() / "manifest.json";
  struct Case {
    const char* name;
    const char* expected_fragment;
    void (*make)(const fs::path& at);
  };
  const Case cases[] = {
      {"a link to /dev/zero", "symbolic link", [](const fs::path& at) { fs::create_symlink("/dev/zero", at); }},
      {"a FIFO", "not a regular file", [](const fs::path& at) { ASSERT_EQ(::mkfifo(at.c_str(), 0644), 0); }},
      {"a directory", "not a regular file", [](const fs::path& at) { fs::create_directory(at); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    save(2);
    fs::remove(manifest);
    c.make(manifest);
    const std::string problems = expect_verify_fails();
    EXPECT_MENTIONS(problems, "manifest.json");
    EXPECT_MENTIONS(problems, c.expected_fragment);
    try {
      read_manifest(newest());
      ADD_FAILURE() << "read_manifest read " << c.name;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::failure) << e.what();
    }
    EXPECT_MENTIONS(expect_fallback(), c.expected_fragment);
  }
}

TEST_F(Damage, ALatestThatIsAFifoDoesNotBlockListingOrLoading) {
  fs::remove(tmp_ / "ckpt" / "latest");
  ASSERT_EQ(::mkfifo((tmp_ / "ckpt" / "latest").c_str(), 0644), 0);
  auto entries = list(tmp_ / "ckpt");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_FALSE(entries[1].latest);
  std::vector<float> w(kRows * kCols);
  double lr = 0;
  std::vector<TensorSlot> slots{{"w", DType::float32, {kRows, kCols}, Sharding::rows, w.data()},
                                {"lr", DType::float64, {}, Sharding::replicated, &lr}};
  EXPECT_EQ(ckpt_->load_latest(slots)->step, 2);
}

TEST_F(Damage, AStateFileThatIsNoRegularFileIsDamage) {
  // The right bytes, but reached through a link that could as well point anywhere.
  fs::rename(newest() / "state.h5", tmp_ / "elsewhere.h5");
  fs::create_symlink(tmp_ / "elsewhere.h5", newest() / "state.h5");
  EXPECT_MENTIONS(expect_verify_fails(), "symbolic link");
  EXPECT_MENTIONS(expect_fallback(), "symbolic link");

  save(2);
  fs::remove(newest() / "state.h5");
  ASSERT_EQ(::mkfifo((newest() / "state.h5").c_str(), 0644), 0);
  EXPECT_MENTIONS(expect_verify_fails(), "not a regular file");
  EXPECT_MENTIONS(expect_fallback(), "not a regular file");
}

// Makes the manifest describe "w" as `shape` with checksum `crc`, stored in one piece of
// rank-00000.h5 that only HDF5 can find (no offset, as for a compressed piece): what is
// tested is what HDF5 is allowed to read there.
void describe_w(const fs::path& checkpoint, const std::vector<hsize_t>& shape, std::uint32_t crc) {
  testing::edit_manifest(checkpoint, [&](json::Value& m) {
    auto& w = testing::member(m, "tensors").as_array()[0];
    json::Value dims = json::Value::array();
    std::uint64_t count = 1;
    for (auto d : shape) {
      dims.push(json::Value(static_cast<std::uint64_t>(d)));
      count *= d;
    }
    w.set("shape", dims);
    w.set("bytes", count * 4);
    w.set("crc32c", static_cast<std::int64_t>(crc));
    w.set("compressed", true);
    json::Value piece = json::Object{{"file", json::Value("rank-00000.h5")}, {"row", json::Value(0)},
                                     {"shape", dims}, {"bytes", json::Value(count * 4)},
                                     {"crc32c", json::Value(static_cast<std::int64_t>(crc))}};
    json::Value pieces = json::Value::array();
    pieces.push(std::move(piece));
    w.set("pieces", std::move(pieces));
  });
}

// Replaces the piece of "w" in rank-00000.h5 with a dataset of `shape` made by `dcpl`,
// writing `data` when given, and makes the manifest describe it with `crc`.
void replace_w(const fs::path& checkpoint, const std::vector<hsize_t>& shape, hid_t dcpl, const void* data,
               std::uint32_t crc) {
  testing::craft_file(checkpoint, "rank-00000.h5", [&](hid_t file) {
    H5Ldelete(file, "tensors/w", H5P_DEFAULT);
    hid_t space = H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr);
    hid_t dataset = H5Dcreate2(file, "tensors/w", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (data) H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(dataset);
    H5Sclose(space);
  });
  describe_w(checkpoint, shape, crc);
}

TEST_F(Damage, ASparseTerabyteTensorInASmallFileIsDamageFoundWithoutReadingIt) {
  const std::vector<hsize_t> terabyte{hsize_t{1} << 38};  // float32: 1 TiB
  // Contiguous, never written: HDF5 would hand back fill values for all of it.
  hid_t contiguous = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(contiguous, H5D_ALLOC_TIME_LATE);
  replace_w(newest(), terabyte, contiguous, nullptr, 0);
  H5Pclose(contiguous);
  EXPECT_LT(fs::file_size(newest() / "rank-00000.h5"), 1u << 20);
  std::string problems = expect_verify_fails();
  EXPECT_MENTIONS(problems, "tensor 'w'");
  EXPECT_MENTIONS(problems, "1099511627776 bytes");
  EXPECT_MENTIONS(expect_fallback(), "tensor 'w'");

  // Chunked and deflated, no chunk written.
  save(2);
  hid_t chunked = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk = 1 << 18;
  H5Pset_chunk(chunked, 1, &chunk);
  H5Pset_deflate(chunked, 1);
  replace_w(newest(), terabyte, chunked, nullptr, 0);
  H5Pclose(chunked);
  problems = expect_verify_fails();
  EXPECT_MENTIONS(problems, "tensor 'w'");
  EXPECT_MENTIONS(problems, "1099511627776 bytes");
  EXPECT_MENTIONS(expect_fallback(), "tensor 'w'");
}

TEST_F(Damage, ATensorWhoseSizeWrapsAround64BitsIsDamage) {
  // 2^62 float32 elements are 2^64 bytes, which wrap to the 0 bytes the manifest claims.
  hid_t chunked = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk = 1024;
  H5Pset_chunk(chunked, 1, &chunk);
  replace_w(newest(), {hsize_t{1} << 62}, chunked, nullptr, 0);
  H5Pclose(chunked);
  const std::string problems = expect_verify_fails();
  EXPECT_MENTIONS(problems, "manifest.json");
  EXPECT_MENTIONS(problems, "more than 2^64 bytes");
  EXPECT_MENTIONS(expect_fallback(), "more than 2^64 bytes");
}

TEST_F(Damage, ACompressedTensorOfZerosStillVerifies) {
  // Deflate shrinks zeros about a thousandfold: the bound on a dataset's size must allow it.
  std::vector<float> zeros(4 << 20);
  auto r = ckpt_->save(3, State{{{"zeros", DType::float32, {4096, 1024}, Sharding::rows, zeros.data(), true}}, {}});
  EXPECT_LT(fs::file_size(r.path / "rank-00000.h5"), zeros.size() * 4 / 100);
  auto report = verify(r.path);
  EXPECT_TRUE(report.ok()) << (report.ok() ? "" : report.problems[0].message);
}

TEST_F(Damage, ExternalStorageIsRefusedRatherThanReadOutsideTheCheckpoint) {
  // A tensor whose bytes HDF5 would read from a file elsewhere, with a matching checksum.
  const auto secret = testing::pattern(99, kRows * kCols);
  const fs::path outside = tmp_ / "secret.bin";
  testing::write_file(outside, std::string(reinterpret_cast<const char*>(secret.data()), secret.size() * 4));
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_external(dcpl, outside.c_str(), 0, secret.size() * 4);
  replace_w(newest(), {kRows, kCols}, dcpl, nullptr, crc32c(0, secret.data(), secret.size() * 4));
  H5Pclose(dcpl);
  EXPECT_MENTIONS(expect_verify_fails(), "external");
  EXPECT_MENTIONS(expect_fallback(), "external");
  std::vector<std::byte> bytes;
  const auto manifest = read_manifest(newest());
  EXPECT_THROW(read_tensor(newest(), manifest.tensors[0], bytes), Error);
}

// An HDF5 file outside the checkpoint holding dataset "data" = pattern(99).
fs::path outside_file(const TempDir& tmp) {
  const fs::path path = tmp / "outside.h5";
  const auto data = testing::pattern(99, kRows * kCols);
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {kRows, kCols};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t dataset = H5Dcreate2(file, "data", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
  H5Dclose(dataset);
  H5Sclose(space);
  H5Fclose(file);
  return path;
}

TEST_F(Damage, AVirtualDatasetMappingAnotherFileIsRefused) {
  const fs::path outside = outside_file(tmp_);
  const auto data = testing::pattern(99, kRows * kCols);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t dims[2] = {kRows, kCols};
  hid_t source = H5Screate_simple(2, dims, nullptr);
  hid_t target = H5Screate_simple(2, dims, nullptr);
  H5Pset_virtual(dcpl, target, outside.c_str(), "data", source);
  replace_w(newest(), {kRows, kCols}, dcpl, nullptr, crc32c(0, data.data(), data.size() * 4));
  H5Sclose(source);
  H5Sclose(target);
  H5Pclose(dcpl);
  EXPECT_MENTIONS(expect_verify_fails(), "virtual");
  EXPECT_MENTIONS(expect_fallback(), "virtual");
}

TEST_F(Damage, ATensorLinkedToAnotherFileIsRefused) {
  const fs::path outside = outside_file(tmp_);
  const auto data = testing::pattern(99, kRows * kCols);
  testing::craft_file(newest(), "rank-00000.h5", [&](hid_t file) {
    H5Ldelete(file, "tensors/w", H5P_DEFAULT);
    H5Lcreate_external(outside.c_str(), "data", file, "tensors/w", H5P_DEFAULT, H5P_DEFAULT);
  });
  describe_w(newest(), {kRows, kCols}, crc32c(0, data.data(), data.size() * 4));
  EXPECT_MENTIONS(expect_verify_fails(), "link");
  EXPECT_MENTIONS(expect_fallback(), "link");
}

TEST_F(Damage, AMissingRankFileIsNamed) {
  fs::remove(newest() / "rank-00000.h5");
  const std::string problems = expect_verify_fails();
  EXPECT_MENTIONS(problems, "rank-00000.h5 is missing");
  EXPECT_MENTIONS(expect_fallback(), "rank-00000.h5 is missing");
}

TEST_F(Damage, AFlippedByteInARankFileFallsBack) {
  testing::flip_byte(newest(), "w", kRows * kCols * 4 - 1);
  EXPECT_MENTIONS(expect_verify_fails(), "checksum mismatch in rank-00000.h5");
  EXPECT_MENTIONS(expect_fallback(), "tensor 'w': checksum mismatch");
}

TEST_F(Damage, AnOffsetOutsideItsRankFileIsDamageFoundWithoutReading) {
  testing::edit_manifest(newest(), [](json::Value& m) {
    auto& w = testing::member(m, "tensors").as_array()[0];
    testing::member(w, "pieces").as_array()[0].set("offset", std::int64_t{1} << 40);
  });
  EXPECT_MENTIONS(expect_verify_fails(), "lies outside rank-00000.h5");
  EXPECT_MENTIONS(expect_fallback(), "lies outside rank-00000.h5");
}

TEST_F(Damage, ATensorListedTwiceAmongManyIsDamage) {
  testing::edit_manifest(newest(), [](json::Value& m) {
    auto& tensors = testing::member(m, "tensors").as_array();
    json::Value w = tensors[0];
    for (int i = 0; i < 1000; ++i) {
      json::Value other = w;
      other.set("name", "other." + std::to_string(i));
      tensors.push_back(std::move(other));
    }
    tensors.push_back(w);
  });
  EXPECT_MENTIONS(expect_verify_fails(), "tensor 'w' is listed twice");
  EXPECT_MENTIONS(expect_fallback(), "listed twice");
}

}  // namespace
}  // namespace cohort::checkpoint
