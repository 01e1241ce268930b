#include "serve/repository.hpp"

#include <algorithm>
#include <set>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"
#include "common/yaml_reader.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
using yaml::Reader;

constexpr long long kMaxDim = std::int64_t{1} << 32;

std::vector<TensorSpec> read_specs(const Reader& r, const YAML::Node& list, const std::string& path) {
  if (!list.IsSequence()) r.fail(path, "must be a list of {name, datatype, dims}");
  std::vector<TensorSpec> specs;
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string at = Reader::at(path, i);
    r.only(list[i], at, {"name", "datatype", "dims"});
    TensorSpec spec;
    spec.name = r.string(list[i]["name"], Reader::join(at, "name"));
    if (spec.name.empty()) r.fail(Reader::join(at, "name"), "must not be empty");
    if (!names.insert(spec.name).second) r.fail(Reader::join(at, "name"), "'" + spec.name + "' is named twice");
    const std::string type_path = Reader::join(at, "datatype");
    const std::string type = r.string(list[i]["datatype"], type_path);
    spec.dtype = parse_datatype(type, r.source() + ": " + type_path);
    const YAML::Node dims = list[i]["dims"];
    if (!dims || !dims.IsSequence()) r.fail(Reader::join(at, "dims"), "must be a list of dimensions (-1: variable)");
    for (std::size_t d = 0; d < dims.size(); ++d) {
      const long long v = r.integer(dims[d], Reader::at(Reader::join(at, "dims"), d), -1, kMaxDim);
      if (v == 0) r.fail(Reader::at(Reader::join(at, "dims"), d), "must be positive, or -1 for variable");
      spec.dims.push_back(v);
    }
    specs.push_back(std::move(spec));
  }
  if (specs.empty()) r.fail(path, "must name at least one tensor");
  return specs;
}

DynamicBatching read_batching(const Reader& r, const YAML::Node& node, const std::string& path) {
  DynamicBatching b;
  if (node.IsNull()) return b;
  r.only(node, path, {"max_queue_delay_us", "preferred_batch_sizes", "max_queue_size"});
  if (node["max_queue_delay_us"]) {
    b.max_queue_delay_us = r.integer(node["max_queue_delay_us"], Reader::join(path, "max_queue_delay_us"), 0, 60000000);
  }
  if (node["max_queue_size"]) {
    b.max_queue_size = static_cast<int>(r.integer(node["max_queue_size"], Reader::join(path, "max_queue_size"), 0, 1000000));
  }
  if (const auto sizes = node["preferred_batch_sizes"]) {
    const std::string at = Reader::join(path, "preferred_batch_sizes");
    if (!sizes.IsSequence()) r.fail(at, "must be a list of batch sizes");
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      b.preferred_batch_sizes.push_back(static_cast<int>(r.integer(sizes[i], Reader::at(at, i), 1, 1000000)));
    }
  }
  return b;
}

VersionPolicy read_policy(const Reader& r, const YAML::Node& node, const std::string& path) {
  VersionPolicy p;
  if (node.IsScalar()) {
    if (node.Scalar() != "all") r.fail(path, "must be 'all', {latest: N} or {specific: [versions]}");
    p.kind = VersionPolicy::Kind::all;
    return p;
  }
  r.only(node, path, {"latest", "specific"});
  if (node["latest"] && node["specific"]) r.fail(path, "gives both latest and specific; give one");
  if (node["latest"]) {
    p.latest = static_cast<int>(r.integer(node["latest"], Reader::join(path, "latest"), 1, 1000000));
  } else if (const auto specific = node["specific"]) {
    const std::string at = Reader::join(path, "specific");
    if (!specific.IsSequence() || specific.size() == 0) r.fail(at, "must be a list of versions");
    p.kind = VersionPolicy::Kind::specific;
    for (std::size_t i = 0; i < specific.size(); ++i) {
      p.specific.push_back(r.integer(specific[i], Reader::at(at, i), 1, kMaxDim));
    }
  } else {
    r.fail(path, "must be 'all', {latest: N} or {specific: [versions]}");
  }
  return p;
}

ModelConfig read_config_document(const Reader& r, const YAML::Node& doc, const std::string& model_name) {
  ModelConfig c;
  c.name = model_name;
  if (doc.IsNull()) return c;
  if (!doc.IsMap()) r.fail("", "must be a mapping of max_batch_size, inputs, outputs, …");
  r.only(doc, "", {"name", "max_batch_size", "inputs", "outputs", "dynamic_batching", "instances", "version_policy"});
  if (doc["name"] && r.string(doc["name"], "name") != model_name) {
    r.fail("name", "'" + r.string(doc["name"], "name") + "' is not the model's folder name '" + model_name + "'");
  }
  if (doc["max_batch_size"]) c.max_batch_size = static_cast<int>(r.integer(doc["max_batch_size"], "max_batch_size", 0, 1 << 20));
  if (doc["inputs"]) c.inputs = read_specs(r, doc["inputs"], "inputs");
  if (doc["outputs"]) c.outputs = read_specs(r, doc["outputs"], "outputs");
  if (doc["dynamic_batching"]) {
    if (c.max_batch_size == 0) r.fail("dynamic_batching", "needs max_batch_size above 0");
    c.dynamic_batching = read_batching(r, doc["dynamic_batching"], "dynamic_batching");
  }
  if (doc["instances"]) c.instances = r.count(doc["instances"], "instances", 1);
  if (doc["version_policy"]) c.version_policy = read_policy(r, doc["version_policy"], "version_policy");
  return c;
}

// The version folders of a model that hold model.pt, oldest first.
std::vector<ModelVersion> find_versions(const fs::path& dir) {
  std::vector<ModelVersion> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.empty() || name.size() > 18 ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const auto file = entry.path() / "model.pt";
    if (std::stoll(name) > 0 && fs::is_regular_file(file)) found.push_back({std::stoll(name), file});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return found;
}

std::vector<ModelVersion> apply_policy(const VersionPolicy& policy, std::vector<ModelVersion> found, const fs::path& dir) {
  using Kind = VersionPolicy::Kind;
  if (policy.kind == Kind::latest && found.size() > static_cast<std::size_t>(policy.latest)) {
    found.erase(found.begin(), found.end() - policy.latest);
  } else if (policy.kind == Kind::specific) {
    std::vector<ModelVersion> kept;
    for (auto v : policy.specific) {
      auto it = std::find_if(found.begin(), found.end(), [&](const auto& m) { return m.version == v; });
      if (it == found.end()) {
        throw input_error((dir / "config.yaml").string() + ": version_policy.specific: version " + std::to_string(v) +
                          " has no " + (dir / std::to_string(v) / "model.pt").string());
      }
      kept.push_back(*it);
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
    found = std::move(kept);
  }
  return found;
}

RepositoryModel read_model(const fs::path& dir) {
  RepositoryModel m;
  const std::string name = dir.filename().string();
  const fs::path config = dir / "config.yaml";
  if (fs::exists(config)) {
    const std::string text = read_text(config, {.user_file = true});
    m.config = yaml::read_document(text, config.string(),
                                   [&](const Reader& r, const YAML::Node& doc) { return read_config_document(r, doc, name); });
  } else {
    m.config.name = name;
  }
  m.versions = apply_policy(m.config.version_policy, find_versions(dir), dir);
  if (m.versions.empty()) {
    throw input_error(dir.string() + ": no version to serve: expected " + (dir / "1" / "model.pt").string() +
                      " (a TorchScript file: torch.jit.script(model).save(path))");
  }
  return m;
}

}  // namespace

ModelConfig read_config(const std::string& text, const std::string& source, const std::string& model_name) {
  return yaml::read_document(text, source,
                             [&](const Reader& r, const YAML::Node& doc) { return read_config_document(r, doc, model_name); });
}

std::vector<RepositoryModel> read_repository(const fs::path& repo, const std::vector<std::string>& only) {
  std::error_code ec;
  if (!fs::is_directory(repo, ec)) {
    throw input_error("--repository " + repo.string() + ": not a directory (expected REPO/<model>/<version>/model.pt)");
  }
  std::vector<RepositoryModel> models;
  for (const auto& entry : fs::directory_iterator(repo)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.starts_with(".")) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    models.push_back(read_model(entry.path()));
  }
  for (const auto& name : only) {
    if (std::none_of(models.begin(), models.end(), [&](const auto& m) { return m.config.name == name; })) {
      throw input_error("--model " + name + ": no such model in " + repo.string());
    }
  }
  std::sort(models.begin(), models.end(), [](const auto& a, const auto& b) { return a.config.name < b.config.name; });
  if (models.empty()) throw input_error("--repository " + repo.string() + ": holds no model folder");
  return models;
}

RepositoryModel single_model(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    throw input_error("--model " + spec + ": expected NAME=PATH (a TorchScript file), or a model's name with --repository");
  }
  RepositoryModel m;
  m.config.name = spec.substr(0, eq);
  if (!is_object_name(m.config.name)) {
    throw input_error("--model " + spec + ": '" + m.config.name + "' is not a model name (letters, digits, '-', '_', '.')");
  }
  const fs::path file = spec.substr(eq + 1);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw input_error("--model " + spec + ": " + file.string() + " is not a file");
  m.versions.push_back({1, file});
  return m;
}

}  // namespace cohort::serve
