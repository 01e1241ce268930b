// serve/service.hpp — the V2 endpoints over the loaded models, apart from HTTP's transport:
// a method, a target and a body in; a status and a JSON body out. The server (server.hpp)
// adds connections, auth and limits around it.
//
//   Service s(load_models(models, *runtime), runtime->platform());
//   Reply r = s.handle("POST", "/v2/models/mlp/infer", body);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "serve/handler.hpp"
#include "serve/metrics.hpp"
#include "serve/repository.hpp"
#include "serve/runtime.hpp"

namespace cohort::serve {

// One version of a model, loaded.
struct LoadedVersion {
  std::int64_t version = 1;
  std::shared_ptr<Model> model;
};

struct LoadedModel {
  ModelConfig config;  // with the signature filled in by the runtime
  std::vector<LoadedVersion> versions;  // oldest first; the newest answers when none is named
};

// Loads every version of every model; a file that does not load is an error naming it.
std::vector<LoadedModel> load_models(std::vector<RepositoryModel> models, Runtime& runtime);

class Service : public Handler {
 public:
  // With a repository, Triton's repository extension loads and unloads its models while
  // the others serve: POST /v2/repository/index, …/models/{m}/load, …/models/{m}/unload.
  Service(std::vector<LoadedModel> models, Runtime& runtime,
          std::optional<std::filesystem::path> repository = std::nullopt);

  // Answers a request through `done`, exactly once: at once, or, for an inference on a
  // batching model, from the batcher's thread once its batch has run, so that no caller's
  // thread waits for the batch. `body` need only live until handle() returns. Never throws:
  // every failure is a Reply with Triton's status and {"error": "…"}. `json_length` is the
  // request's Inference-Header-Content-Length, when it has one: the body's JSON is that long,
  // and binary tensors follow it.
  void handle(std::string_view method, std::string_view target, const std::string& body,
              std::optional<std::size_t> json_length, std::function<void(Reply)> done) const override;
  // The same, waiting for the answer.
  Reply handle(std::string_view method, std::string_view target, const std::string& body,
               std::optional<std::size_t> json_length = std::nullopt) const;

  // Readiness: false once draining starts; health/ready then answers 503. Requests under
  // way still finish, those in a batcher's queue without waiting for more: the server stops
  // taking new ones.
  void stop_accepting() override;
  bool ready() const { return ready_; }

 private:
  // A request's body, and how much of it is JSON.
  struct Body {
    const std::string& text;
    std::optional<std::size_t> json_length{};
  };
  // An inference request read and checked, on its way to its model (service.cpp).
  struct Inference;
  // What routing gives: the reply itself, or an inference still to run.
  using Routed = std::variant<Reply, std::shared_ptr<Inference>>;
  Routed route(std::string_view method, std::string_view path, const Body& body) const;
  Routed model_route(std::string_view method, std::string_view rest, const Body& body) const;
  std::shared_ptr<Inference> prepare(std::shared_ptr<const LoadedModel> model, const LoadedVersion& version,
                                     const Body& body) const;
  Reply finish(const Inference& job, Model::Result result) const;
  // In the metrics: the request, and what its model's answer says of the run, when it had one.
  void record(const Inference& job, bool success, double compute_s, const Model::Result* result) const;
  std::shared_ptr<const LoadedModel> find_model(std::string_view name) const;
  const LoadedVersion& find_version(const LoadedModel& model, std::string_view version) const;
  std::string pending_text() const;
  // The statistics extension: every model's, one model's (version null) or one version's.
  Reply statistics(const LoadedModel* model, const LoadedVersion* version) const;
  // The repository extension (service_repository.cpp).
  Reply repository_route(std::string_view method, std::string_view rest) const;
  Reply repository_index() const;
  Reply load(const std::string& name) const;
  Reply unload(const std::string& name) const;

  // A request holds the model it found while it runs, so that a load or an unload swaps
  // the map's entry without waiting for it and without pulling a model from under it.
  mutable std::shared_mutex models_mutex_;
  mutable std::map<std::string, std::shared_ptr<const LoadedModel>, std::less<>> models_;
  Runtime& runtime_;
  std::optional<std::filesystem::path> repository_;
  std::string platform_;
  std::atomic<bool> ready_{true};
  mutable Metrics metrics_;
};

}  // namespace cohort::serve
