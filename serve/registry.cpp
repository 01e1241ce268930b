#include "serve/registry.hpp"

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"

namespace cohort::serve {

namespace fs = std::filesystem;

fs::path services_root(const std::string& given) {
  if (!given.empty()) return given;
  if (auto dir = env_or("COHORT_SERVICE_DIR"); !dir.empty()) return dir;
  if (auto data = env_or("XDG_DATA_HOME"); !data.empty()) return fs::path(data) / "cohort" / "services";
  const auto home = env_or("HOME");
  if (home.empty()) throw input_error("neither COHORT_SERVICE_DIR, XDG_DATA_HOME nor HOME is set: give --dir D");
  return fs::path(home) / ".local" / "share" / "cohort" / "services";
}

fs::path registry_path(const fs::path& service_dir) { return service_dir / "registry.json"; }

void write_registry(const fs::path& service_dir, const Registry& r) {
  json::Value traffic = json::Value::object();
  for (const auto& [version, percent] : r.traffic) traffic.set(version, percent);
  json::Value storage = json::Value::object();
  for (const auto& [version, path] : r.storage) storage.set(version, path);
  json::Value replicas = json::Value::array();
  for (const auto& x : r.replicas) {
    replicas.push(json::Object{{"id", x.id}, {"node", x.node}, {"host", x.host}, {"port", x.port}, {"pid", x.pid},
                               {"version", x.version}, {"state", x.state}, {"restarts", x.restarts},
                               {"job", x.job}});
  }
  const json::Value doc(json::Object{{"name", r.name}, {"state", r.state}, {"job", r.job}, {"requeues", r.requeues},
                                     {"url", r.url},
                                     {"message", r.message}, {"traffic", traffic}, {"storage", storage}, {"newest_version", r.newest_version},
                                     {"replicas", replicas},
                                     {"autoscale", json::Object{{"min", r.min_replicas}, {"max", r.max_replicas},
                                                                {"desired", r.desired}, {"decision", r.decision},
                                                                {"decided_at", r.decided_at}}}});
  write_file_atomically(registry_path(service_dir), json::write(doc, 2) + "\n");
}

Registry read_registry(const fs::path& service_dir) {
  const auto path = registry_path(service_dir);
  const auto text = read_file(path.string());
  if (!text) throw input_error("no service at " + service_dir.string() + " (it has no registry.json): see 'cohort serve list'");
  const auto doc = json::parse(*text, path.string());
  Registry r;
  r.name = doc.at("name").as_string();
  r.state = doc.at("state").as_string();
  r.job = doc.at("job").as_string();
  r.url = doc.at("url").as_string();
  r.message = doc.at("message").as_string();
  if (const auto* n = doc.find("requeues")) r.requeues = static_cast<int>(n->as_int());  // older registries have none
  for (const auto& [version, percent] : doc.at("traffic").as_object()) r.traffic[version] = static_cast<int>(percent.as_int());
  for (const auto& [version, path] : doc.at("storage").as_object()) r.storage[version] = path.as_string();
  if (const auto* n = doc.find("newest_version")) r.newest_version = n->as_int();  // older registries have none
  for (const auto& x : doc.at("replicas").as_array()) {
    r.replicas.push_back({static_cast<int>(x.at("id").as_int()), x.at("node").as_string(), x.at("host").as_string(),
                          static_cast<int>(x.at("port").as_int()), x.at("pid").as_int(), x.at("version").as_string(),
                          x.at("state").as_string(), static_cast<int>(x.at("restarts").as_int()), ""});
    if (const auto* job = x.find("job")) r.replicas.back().job = job->as_string();  // older registries have none
  }
  // Registries written before the autoscaler have no "autoscale".
  if (const auto* a = doc.find("autoscale")) {
    r.min_replicas = static_cast<int>(a->at("min").as_int());
    r.max_replicas = static_cast<int>(a->at("max").as_int());
    r.desired = static_cast<int>(a->at("desired").as_int());
    r.decision = a->at("decision").as_string();
    r.decided_at = a->at("decided_at").as_int();
  }
  return r;
}

}  // namespace cohort::serve
