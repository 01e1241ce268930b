#include "serve/service.hpp"

#include <algorithm>
#include <chrono>
#include <future>

#include "common/json.hpp"
#include "common/text.hpp"
#include "common/version.hpp"
#include "serve/batcher.hpp"
#include "serve/protocol.hpp"

namespace cohort::serve {
namespace {

Reply ok(const json::Value& body) { return {200, json::write(body)}; }

HttpError not_found(const std::string& message) { return HttpError(404, message); }

void expect_method(std::string_view method, std::string_view wanted, std::string_view path) {
  if (method != wanted) {
    throw HttpError(405, std::string(path) + " takes " + std::string(wanted) + ", not " + std::string(method));
  }
}

json::Value server_metadata() {
  json::Value out = json::Value::object();
  out.set("name", "cohort");
  out.set("version", std::string(kVersion));
  json::Value extensions = json::Value::array();
  extensions.push("binary_tensor_data");
  extensions.push("model_repository");
  extensions.push("statistics");
  out.set("extensions", std::move(extensions));
  return out;
}

}  // namespace

std::string error_body(const std::string& message) {
  json::Value body = json::Value::object();
  body.set("error", message);
  return json::write(body);
}

std::vector<LoadedModel> load_models(std::vector<RepositoryModel> models, Runtime& runtime) {
  std::vector<LoadedModel> loaded;
  for (auto& m : models) {
    LoadedModel l{std::move(m.config), {}};
    for (const auto& v : m.versions) {
      ModelConfig config = l.config;
      std::shared_ptr<Model> model = runtime.load(v.file, config);
      if (config.dynamic_batching) {
        model = std::make_shared<BatchingModel>(std::move(model), config.max_batch_size, *config.dynamic_batching,
                                                config.instances);
      }
      if (l.versions.empty()) l.config = std::move(config);  // the first fills in what the config left out
      l.versions.push_back({v.version, std::move(model)});
    }
    loaded.push_back(std::move(l));
  }
  return loaded;
}

Service::Service(std::vector<LoadedModel> models, Runtime& runtime, std::optional<std::filesystem::path> repository)
    : runtime_(runtime), repository_(std::move(repository)), platform_(runtime.platform()) {
  for (auto& m : models) {
    std::string name = m.config.name;
    models_.emplace(std::move(name), std::make_shared<const LoadedModel>(std::move(m)));
  }
}

namespace {

// Triton's status for a failure, in {"error": "…"}.
Reply failure_reply(std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const HttpError& e) {
    Reply r{e.status(), error_body(e.what())};
    r.retry_after_s = e.retry_after_s();
    return r;
  } catch (const Error& e) {
    return {e.kind() == ErrorKind::input ? 400 : 500, error_body(e.what())};
  } catch (const std::exception& e) {
    return {500, error_body(std::string("internal error: ") + e.what())};
  } catch (...) {
    return {500, error_body("internal error")};
  }
}

}  // namespace

struct Service::Inference {
  using Clock = std::chrono::steady_clock;
  std::shared_ptr<const LoadedModel> model;  // held until the answer, whatever is unloaded meanwhile
  const LoadedVersion* version = nullptr;
  InferRequest request;
  std::int64_t batch = 1;
  Clock::time_point start = Clock::now();
  Clock::time_point compute_start{};
};

void Service::handle(std::string_view method, std::string_view target, const std::string& body,
                     std::optional<std::size_t> json_length, std::function<void(Reply)> done) const {
  const std::string_view path = target.substr(0, target.find('?'));
  std::shared_ptr<Inference> job;
  try {
    Routed routed = route(method, path, Body{body, json_length});
    if (auto* reply = std::get_if<Reply>(&routed)) return done(std::move(*reply));
    job = std::get<std::shared_ptr<Inference>>(std::move(routed));
    job->compute_start = Inference::Clock::now();
    job->version->model->run_async(job->request.inputs,
                                   [this, job, done](Model::Result result) { done(finish(*job, std::move(result))); });
  } catch (...) {
    if (job) record(*job, false, 0, nullptr);  // refused by its model: a full queue
    done(failure_reply(std::current_exception()));
  }
}

Reply Service::handle(std::string_view method, std::string_view target, const std::string& body,
                      std::optional<std::size_t> json_length) const {
  std::promise<Reply> answer;
  auto reply = answer.get_future();
  handle(method, target, body, json_length, [&answer](Reply r) { answer.set_value(std::move(r)); });
  return reply.get();
}

Service::Routed Service::route(std::string_view method, std::string_view path, const Body& body) const {
  if (path == "/v2" || path == "/v2/") {
    expect_method(method, "GET", path);
    return ok(server_metadata());
  }
  if (path == "/v2/health/live") {
    expect_method(method, "GET", path);
    return Reply{200, "{}"};
  }
  if (path == "/v2/health/ready") {
    expect_method(method, "GET", path);
    if (!ready()) throw HttpError(503, "the server is draining: it takes no new requests");
    return Reply{200, "{}"};
  }
  if (path == "/metrics") {
    expect_method(method, "GET", path);
    return Reply{200, metrics_.text() + pending_text(), "text/plain; version=0.0.4; charset=utf-8"};
  }
  constexpr std::string_view repository = "/v2/repository/";
  if (path.starts_with(repository)) return repository_route(method, path.substr(repository.size()));
  if (path == "/v2/models/stats") {
    expect_method(method, "GET", path);
    return statistics(nullptr, nullptr);
  }
  constexpr std::string_view models = "/v2/models/";
  if (path.starts_with(models)) return model_route(method, path.substr(models.size()), body);
  throw not_found("no endpoint " + std::string(path) + " (see GET /v2 and /v2/models/NAME)");
}

// NAME[/versions/V][/ready|/infer]
Service::Routed Service::model_route(std::string_view method, std::string_view rest, const Body& body) const {
  auto parts = split(rest, '/');
  if (parts.empty() || parts[0].empty()) throw not_found("no model named in the path");
  auto found = find_model(parts[0]);  // held while the request runs
  const LoadedModel& model = *found;
  std::size_t next = 1;
  const LoadedVersion* version = &model.versions.back();
  if (parts.size() >= 3 && parts[1] == "versions") {
    version = &find_version(model, parts[2]);
    next = 3;
  }
  const std::string_view action = parts.size() > next ? parts[next] : "";
  if (parts.size() > next + 1 || (parts.size() == next + 1 && action != "ready" && action != "infer" && action != "stats")) {
    throw not_found("no endpoint /v2/models/" + std::string(rest) + " (expected …/ready, …/infer, …/stats or the metadata)");
  }
  if (action == "infer") {
    expect_method(method, "POST", "…/infer");
    return prepare(std::move(found), *version, body);
  }
  expect_method(method, "GET", "/v2/models/" + std::string(rest));
  if (action == "ready") return Reply{ready() ? 200 : 503, "{}"};
  if (action == "stats") return statistics(&model, next == 3 ? version : nullptr);
  std::vector<std::int64_t> versions;
  if (next == 3) versions.push_back(version->version);
  else for (const auto& v : model.versions) versions.push_back(v.version);
  return ok(model_metadata(model.config, versions, platform_));
}

// Reads the request against its model's signature. A request that does not read is counted
// in the metrics as a failure, as every request is once its model and version are known.
std::shared_ptr<Service::Inference> Service::prepare(std::shared_ptr<const LoadedModel> model,
                                                     const LoadedVersion& version, const Body& body) const {
  auto job = std::make_shared<Inference>();
  job->model = std::move(model);
  job->version = &version;
  const ModelConfig& config = job->model->config;
  try {
    const std::size_t json_length = body.json_length.value_or(body.text.size());
    if (json_length > body.text.size()) {
      throw HttpError(400, "Inference-Header-Content-Length " + std::to_string(json_length) + " is past the body's " +
                               std::to_string(body.text.size()) + " bytes");
    }
    const std::string_view text(body.text);
    json::Value request_json;
    try {
      request_json = json::parse(text.substr(0, json_length), "the request body");
    } catch (const Error& e) {
      throw HttpError(400, e.what());
    }
    job->request = read_infer_request(request_json, config, text.substr(json_length));
  } catch (...) {
    record(*job, false, 0, nullptr);
    throw;
  }
  if (config.max_batch_size > 0 && !job->request.inputs.empty()) job->batch = job->request.inputs[0].shape[0];
  return job;
}

// The model's answer as the V2 reply; a failure of the model itself is a 500 naming it.
Reply Service::finish(const Inference& job, Model::Result result) const {
  const double compute_s = std::chrono::duration<double>(Inference::Clock::now() - job.compute_start).count();
  const ModelConfig& config = job.model->config;
  try {
    if (result.failure) {
      try {
        std::rethrow_exception(result.failure);
      } catch (const HttpError&) {
        throw;
      } catch (const Error& e) {
        throw HttpError(500, config.name + " version " + std::to_string(job.version->version) + ": " + e.what());
      }
    }
    std::string binary;
    Reply r = ok(infer_response(config.name, job.version->version, job.request, result.outputs, &binary));
    if (!binary.empty()) {
      r.json_length = r.body.size();
      r.body += binary;
      r.content_type = "application/octet-stream";
    }
    record(job, true, compute_s, &result);
    return r;
  } catch (...) {
    record(job, false, 0, &result);
    return failure_reply(std::current_exception());
  }
}

void Service::record(const Inference& job, bool success, double compute_s, const Model::Result* result) const {
  Metrics::Request r{.success = success,
                     .batch = success ? job.batch : 0,
                     .request_s = std::chrono::duration<double>(Inference::Clock::now() - job.start).count(),
                     .compute_s = compute_s,
                     .executions = result ? result->executions : 0};
  if (result) {
    r.queue_s = result->queue_s;
    r.batch_rows = result->batch_rows > 0 ? result->batch_rows : (result->executions > 0 ? job.batch : 0);
  }
  metrics_.record(job.model->config.name, job.version->version, r);
}

std::shared_ptr<const LoadedModel> Service::find_model(std::string_view name) const {
  std::shared_lock lock(models_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) throw not_found("unknown model '" + std::string(name) + "'");
  return it->second;
}

void Service::stop_accepting() {
  ready_ = false;
  std::shared_lock lock(models_mutex_);
  for (const auto& [name, m] : models_) {
    for (const auto& v : m->versions) v.model->flush();
  }
}

// The queue depth of each model version, as Prometheus' text.
std::string Service::pending_text() const {
  std::string out = "# HELP cohort_inference_pending_requests Requests waiting in a model's queue.\n"
                    "# TYPE cohort_inference_pending_requests gauge\n";
  std::shared_lock lock(models_mutex_);
  for (const auto& [name, m] : models_) {
    for (const auto& v : m->versions) {
      out += "cohort_inference_pending_requests{model=\"" + name + "\",version=\"" + std::to_string(v.version) +
             "\"} " + std::to_string(v.model->pending()) + "\n";
    }
  }
  return out;
}

// {"model_stats": [...]} in Triton's shape, for one version, one model's, or every model's.
Reply Service::statistics(const LoadedModel* model, const LoadedVersion* version) const {
  auto duration = [](std::uint64_t count, double seconds) {
    json::Value d = json::Value::object();
    d.set("count", static_cast<unsigned long long>(count));
    d.set("ns", static_cast<long long>(seconds * 1e9));
    return d;
  };
  auto entry = [&](const LoadedModel& m, const LoadedVersion& v) {
    const Metrics::Stats s = metrics_.stats(m.config.name, v.version);
    json::Value inference = json::Value::object();
    inference.set("success", duration(s.success, s.success_s));
    inference.set("fail", duration(s.failure, s.failure_s));
    inference.set("compute_infer", duration(s.executions, s.compute_s));
    json::Value e = json::Value::object();
    e.set("name", m.config.name);
    e.set("version", std::to_string(v.version));
    e.set("last_inference", static_cast<long long>(s.last_inference_ms));
    e.set("inference_count", static_cast<unsigned long long>(s.inferences));
    e.set("execution_count", static_cast<unsigned long long>(s.executions));
    e.set("inference_stats", std::move(inference));
    return e;
  };
  json::Value list = json::Value::array();
  if (version) {
    list.push(entry(*model, *version));
  } else if (model) {
    for (const auto& v : model->versions) list.push(entry(*model, v));
  } else {
    std::shared_lock lock(models_mutex_);
    for (const auto& [name, m] : models_) {
      for (const auto& v : m->versions) list.push(entry(*m, v));
    }
  }
  json::Value out = json::Value::object();
  out.set("model_stats", std::move(list));
  return ok(out);
}

const LoadedVersion& Service::find_version(const LoadedModel& model, std::string_view version) const {
  for (const auto& v : model.versions) {
    if (std::to_string(v.version) == version) return v;
  }
  throw not_found("model '" + model.config.name + "' has no version '" + std::string(version) + "'");
}

}  // namespace cohort::serve
