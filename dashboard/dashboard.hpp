// dashboard/dashboard.hpp — `cohort dashboard`: a web app over the state cohort already keeps.
// It writes nothing of its own: the lineage store (COHORT_LINEAGE, or --store) says which
// sweeps, pipeline runs, launches, models and servers there are, and where their
// directories are; each page reads those directories and Slurm as they are now.
//
//   dashboard::App app({.store = "/home/me/.local/share/cohort/lineage.db", .user = "me"});
//   serve::run_server(app, options, on_listening);  // the model server's HTTP stack
//
// Pages: / (overview), /jobs, /jobs/ID, /sweeps, /sweeps/ID, /pipelines, /pipelines/ID, /models,
// /models/ID, /endpoints; the same data as JSON under /api/ (docs/dashboard.md).
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "serve/handler.hpp"

namespace cohort::dashboard {

struct Config {
  std::filesystem::path store;  // the lineage store
  std::string user;             // whose Slurm jobs are shown: only theirs
  // Where `cohort serve submit` keeps its services (serve/registry.hpp); empty: none shown.
  std::filesystem::path services = {};
  // Slurm is asked at most once in this long, however many pages are loaded.
  std::chrono::milliseconds slurm_every{5000};
  // A ready service's metrics are scraped at most once in this long, each GET given at most
  // `scrape_timeout`: a page waits that long at worst for a service that does not answer.
  std::chrono::milliseconds scrape_every{5000};
  std::chrono::milliseconds scrape_timeout{1000};
};

// `text` safe inside HTML text and quoted attributes: & < > " ' as entities.
std::string html_escape(std::string_view text);

class SlurmCache;
class TrafficCache;

class App : public serve::Handler {
 public:
  explicit App(Config config);
  ~App() override;

  void handle(std::string_view method, std::string_view target, const std::string& body,
              std::optional<std::size_t> json_length, std::function<void(serve::Reply)> done) const override;
  void stop_accepting() override {}

  // The reply to a GET of `target`, as handle() gives it: what tests and the benchmark call.
  serve::Reply get(std::string_view target) const;
  // How many times Slurm has been asked so far.
  int slurm_queries() const;

 private:
  Config config_;
  std::unique_ptr<SlurmCache> slurm_;
  std::unique_ptr<TrafficCache> traffic_;
};

// `cohort dashboard [--port P] [--address A] [--token-file F] …`; returns the exit status.
int dashboard_command(const std::vector<std::string>& args);

}  // namespace cohort::dashboard
