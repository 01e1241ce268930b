// pipeline/digest.hpp — SHA-256, by OpenSSL's libcrypto, of bytes and of artifacts: what
// fingerprints tasks and records what each produced.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace cohort::pipeline {

// Lower-case hex SHA-256 of `data`.
std::string sha256(std::string_view data);

// Lower-case hex SHA-256 of an artifact: a file's bytes; for a directory, every regular
// file under it in path order, each as its relative path and its bytes, so that renaming
// a file changes the digest. A symbolic link is hashed as its target's path. Throws
// cohort::Error naming what cannot be read.
std::string artifact_digest(const std::filesystem::path& path);

}  // namespace cohort::pipeline
