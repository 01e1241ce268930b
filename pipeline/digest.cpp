#include "pipeline/digest.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::pipeline {
namespace {

namespace fs = std::filesystem;

class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw Error("SHA-256: OpenSSL cannot start a digest");
  }
  void add(std::string_view data) {
    if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) throw Error("SHA-256: OpenSSL failed to digest");
  }
  // The length first, so that two pieces cannot be shifted into one another.
  void add_framed(std::string_view data) {
    add(std::to_string(data.size()) + ":");
    add(data);
  }
  void add_file(const fs::path& path) {
    RegularFile f = open_regular(path);
    std::vector<char> buffer(1 << 20);
    for (std::uint64_t left = f.size; left > 0;) {
      const ssize_t n = ::read(f.fd.get(), buffer.data(), std::min<std::uint64_t>(buffer.size(), left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(system_message("read " + path.string(), errno));
      if (n == 0) break;
      add(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      left -= static_cast<std::uint64_t>(n);
    }
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) throw Error("SHA-256: OpenSSL failed to finish a digest");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += {kHex[md[i] >> 4], kHex[md[i] & 15]};
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

}  // namespace

std::string sha256(std::string_view data) {
  Hasher h;
  h.add(data);
  return h.hex();
}

std::string artifact_digest(const fs::path& path) {
  Hasher h;
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (ec) throw Error("cannot read artifact " + path.string() + ": " + ec.message());
  if (!fs::is_directory(status)) {
    h.add_file(path);
    return h.hex();
  }
  std::vector<fs::path> entries;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    entries.push_back(it->path());
  }
  if (ec) throw Error("cannot list artifact " + path.string() + ": " + ec.message());
  std::sort(entries.begin(), entries.end());
  for (const auto& e : entries) {
    const auto s = fs::symlink_status(e, ec);
    const std::string rel = fs::relative(e, path).generic_string();
    if (fs::is_symlink(s)) {
      h.add_framed("link " + rel);
      h.add_framed(fs::read_symlink(e, ec).string());
    } else if (fs::is_regular_file(s)) {
      h.add_framed("file " + rel);
      h.add_framed(std::to_string(fs::file_size(e, ec)));
      h.add_file(e);
    } else if (fs::is_directory(s)) {
      h.add_framed("dir " + rel);
    }
  }
  return h.hex();
}

}  // namespace cohort::pipeline
