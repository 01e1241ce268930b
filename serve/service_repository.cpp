// Triton's model repository extension: what the repository holds, and loading or unloading
// one model while the others serve. A load reads the model's folder again and loads its
// versions before it replaces what served: requests under way finish on the old versions,
// and the next ones find the new.
#include <algorithm>
#include <mutex>

#include "common/json.hpp"
#include "serve/protocol.hpp"
#include "serve/service.hpp"

namespace cohort::serve {

Reply Service::repository_route(std::string_view method, std::string_view rest) const {
  if (method != "POST") throw HttpError(405, "/v2/repository/" + std::string(rest) + " takes POST");
  if (!repository_) {
    throw HttpError(400, "this server serves files (--model NAME=PATH), not a repository: start it with --repository");
  }
  if (rest == "index") return repository_index();
  constexpr std::string_view models = "models/";
  if (rest.starts_with(models)) {
    const std::string_view tail = rest.substr(models.size());
    const auto slash = tail.find('/');
    const std::string name(tail.substr(0, slash));
    const std::string_view action = slash == std::string_view::npos ? "" : tail.substr(slash + 1);
    if (action == "load") return load(name);
    if (action == "unload") return unload(name);
  }
  throw HttpError(404, "no endpoint /v2/repository/" + std::string(rest) +
                           " (expected index, models/NAME/load or models/NAME/unload)");
}

// [{"name", "version", "state", "reason"}]: each loaded version READY, and each model folder
// that is not loaded UNAVAILABLE.
Reply Service::repository_index() const {
  json::Value list = json::Value::array();
  std::vector<std::string> folders;
  for (const auto& entry : std::filesystem::directory_iterator(*repository_)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && !name.starts_with(".")) folders.push_back(name);
  }
  std::sort(folders.begin(), folders.end());
  std::shared_lock lock(models_mutex_);
  for (const auto& name : folders) {
    auto it = models_.find(name);
    if (it == models_.end()) {
      json::Value row = json::Value::object();
      row.set("name", name);
      row.set("state", "UNAVAILABLE");
      row.set("reason", "unloaded");
      list.push(std::move(row));
      continue;
    }
    for (const auto& v : it->second->versions) {
      json::Value row = json::Value::object();
      row.set("name", name);
      row.set("version", std::to_string(v.version));
      row.set("state", "READY");
      row.set("reason", "");
      list.push(std::move(row));
    }
  }
  return {200, json::write(list)};
}

Reply Service::load(const std::string& name) const {
  std::vector<LoadedModel> loaded;
  try {
    loaded = load_models(read_repository(*repository_, {name}), runtime_);
  } catch (const Error& e) {
    throw HttpError(400, "cannot load '" + name + "': " + e.what());
  }
  auto model = std::make_shared<const LoadedModel>(std::move(loaded.front()));
  std::unique_lock lock(models_mutex_);
  models_[name] = std::move(model);
  return {200, "{}"};
}

Reply Service::unload(const std::string& name) const {
  std::unique_lock lock(models_mutex_);
  if (models_.erase(name) == 0) throw HttpError(404, "unknown model '" + name + "': nothing to unload");
  return {200, "{}"};
}

}  // namespace cohort::serve
