#include "serve/serve_command.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/options.hpp"
#include "serve/lineage_record.hpp"
#include "serve/predict.hpp"
#include "serve/runtime.hpp"
#include "serve/server.hpp"
#include "serve/service.hpp"
#include "serve/service_commands.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

// The token is the file's alone (0600). A folder made for it is made private; a folder that
// was already there is the user's and keeps its mode (it may be /tmp, or their home).
void create_token_file(const fs::path& file) {
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  std::error_code ec;
  if (!fs::exists(folder, ec)) {
    fs::create_directories(folder, ec);
    if (ec) throw input_error("--token-file " + file.string() + ": cannot create its folder (" + ec.message() + ")");
    ::chmod(folder.c_str(), 0700);
  }
  Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw input_error(system_message("--token-file " + file.string() + ": cannot create it", errno));
  write_all(fd.get(), unguessable_name(48) + "\n", file.string());
}

options::Help start_help() {
  return {"serve start",
          {"--repository REPO [--model NAME ...] [options]", "--model NAME=PATH [options]"},
          "Serves TorchScript models over the Open Inference Protocol (KServe V2, HTTP/1.1) until\n"
          "SIGTERM or SIGINT, which drain it: readiness goes false, requests under way finish,\n"
          "and it exits 0. REPO holds <model>/config.yaml and <model>/<version>/model.pt, as\n"
          "Triton lays them out (docs/serve.md). Requests need 'Authorization: Bearer TOKEN'\n"
          "unless --no-auth; the token is read from --token-file, created there when missing.\n"
          "Once it listens it prints the address and a request to try on stdout.",
          {"cohort serve start --repository models --port 8000",
           "cohort serve start --model mlp=mlp.pt --port 0 --threads 4"}};
}

struct StartArgs {
  std::string repository;
  std::vector<std::string> models;
  ServerOptions server;
  bool auth = true;
  fs::path token_file;
};

std::optional<StartArgs> parse_start(const std::vector<std::string>& args) {
  options::Parser parser(start_help());
  parser.add()
      ("repository", po::value<std::string>()->value_name("REPO"), "a model repository: REPO/<model>/<version>/model.pt")
      ("model", po::value<std::vector<std::string>>()->value_name("NAME[=PATH]"),
       "with --repository: serve only this model; alone: serve the file PATH as NAME (repeatable)")
      ("address", po::value<std::string>()->value_name("A")->default_value("127.0.0.1"), "the address to listen on")
      ("port", po::value<std::string>()->value_name("P")->default_value("8000"), "the port; 0 takes any free one")
      ("threads", po::value<std::string>()->value_name("T")->default_value("4"), "threads serving requests")
      ("max-body", po::value<std::string>()->value_name("BYTES")->default_value("64M"), "larger bodies are answered 413")
      ("max-connections", po::value<std::string>()->value_name("N")->default_value("1024"),
       "connections held at once; more are answered 503")
      ("read-timeout", po::value<std::string>()->value_name("SECONDS")->default_value("30"),
       "a request must arrive whole, and an idle connection speak, within this; else it is closed")
      ("token-file", po::value<std::string>()->value_name("FILE"), "the bearer token (default: ~/.config/cohort/serve-token)")
      ("no-auth", "answer anyone: no token asked for");
  auto p = parser.parse(args);
  if (!p) return std::nullopt;
  StartArgs s;
  if (p->has("repository")) s.repository = p->values["repository"].as<std::string>();
  if (p->has("model")) s.models = p->values["model"].as<std::vector<std::string>>();
  if (s.repository.empty() && s.models.empty()) throw parser.usage_error("give --repository REPO or --model NAME=PATH");
  s.server.address = p->values["address"].as<std::string>();
  s.server.port = static_cast<int>(options::whole_number("--port", p->values["port"].as<std::string>(), 0, 65535));
  s.server.threads = static_cast<int>(options::whole_number("--threads", p->values["threads"].as<std::string>(), 1, 1024));
  s.server.body_limit = options::byte_size("--max-body", p->values["max-body"].as<std::string>(), 1);
  s.server.max_connections = static_cast<std::size_t>(
      options::whole_number("--max-connections", p->values["max-connections"].as<std::string>(), 1, 1 << 20));
  s.server.read_timeout = std::chrono::seconds(
      options::whole_number("--read-timeout", p->values["read-timeout"].as<std::string>(), 1, 86400));
  s.auth = !p->has("no-auth");
  if (!s.auth && p->has("token-file")) throw parser.usage_error("--no-auth and --token-file contradict each other");
  s.token_file = p->has("token-file") ? fs::path(p->values["token-file"].as<std::string>()) : default_token_file();
  return s;
}

std::vector<RepositoryModel> find_models(const StartArgs& s) {
  if (!s.repository.empty()) return read_repository(s.repository, s.models);
  std::vector<RepositoryModel> models;
  for (const auto& spec : s.models) models.push_back(single_model(spec));
  return models;
}

// The listening line comes last: whoever waits for it has the lines before it too.
void announce(const StartArgs& s, int port) {
  const std::string url = "http://" + s.server.address + ":" + std::to_string(port) + "/v2";
  if (s.server.token) {
    std::cout << "cohort serve: token in " << s.token_file.string() << "; try:\n"
              << "    curl -H 'Authorization: Bearer " << *s.server.token << "' " << url << "\n";
  } else {
    std::cout << "cohort serve: --no-auth: anyone who can reach the port is answered\n";
  }
  std::cout << "cohort serve: listening on " << url << " (port " << port << ")" << std::endl;
}

int start(const std::vector<std::string>& args) {
  auto s = parse_start(args);
  if (!s) return 0;
  auto runtime = torchscript_runtime();
  if (!runtime) {
    throw Error("this cohort was built without libtorch, so it has no TorchScript runtime: install libtorch-dev "
                "(scripts/install-deps) and rebuild");
  }
  auto models = find_models(*s);
  const auto served = models;  // what the lineage store records: the files as found
  if (s->auth) s->server.token = read_or_create_token(s->token_file);
  std::optional<fs::path> repository;
  if (!s->repository.empty()) repository = s->repository;
  Service service(load_models(std::move(models), *runtime), *runtime, repository);
  std::string url, record;
  run_server(service, s->server, [&](int port) {
    url = "http://" + s->server.address + ":" + std::to_string(port) + "/v2";
    record = record_serving_start(served, url);
    announce(*s, port);
  });
  record_serving_end(record, served, url);
  std::cerr << "cohort serve: drained; exiting\n";
  return 0;
}

}  // namespace

fs::path default_token_file() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) return fs::path(xdg) / "cohort" / "serve-token";
  const char* home = std::getenv("HOME");
  if (!home || !*home) throw input_error("neither XDG_CONFIG_HOME nor HOME is set: give --token-file FILE");
  return fs::path(home) / ".config" / "cohort" / "serve-token";
}

std::string read_or_create_token(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) create_token_file(file);
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw input_error(system_message("--token-file " + file.string(), errno));
  if (st.st_mode & 077) {
    throw input_error("--token-file " + file.string() + ": others may read it (mode " +
                      std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                      std::to_string(st.st_mode & 7) + "); chmod 600 it");
  }
  std::string text = read_text(file, {.user_file = true});
  std::string token = text.substr(0, text.find('\n'));
  if (token.size() < 16) throw input_error("--token-file " + file.string() + ": holds no token of 16 characters or more");
  return token;
}

int serve_command(const std::vector<std::string>& args) {
  static constexpr options::Subcommand kVerbs[] = {
      {"start", "--repository REPO | --model NAME=PATH [options]", "serve models over KServe V2 HTTP until SIGTERM",
       &start},
      {"predict", "--model PATH --input IN --output OUT [options]",
       "run a model over every row of an HDF5 dataset or .npy file, sharded and restartable", &predict_command},
      {"submit", "ISVC.yaml [--dir D]", "serve a KServe InferenceService as a Slurm job of replicas", &submit_command},
      {"status", "NAME [--json]", "a service's replicas, traffic split and request times", &status_command},
      {"list", "[--json]", "the services submitted", &list_command},
      {"update", "NAME --storage-uri PATH [--canary P]", "a new model: a canary, or a rolling update", &update_command},
      {"promote", "NAME", "the canary takes all requests; the old replicas stop", &promote_command},
      {"rollback", "NAME", "the old version takes all requests; the canary stops", &rollback_command},
      {"router", "--replica HOST:PORT ... [options]", "one URL in front of replicas: least outstanding, retries",
       &router_command},
      {"job", "DIR", "what a submitted service's job runs (started by submit)", &job_command},
  };
  return options::dispatch({{"serve",
                             {"<verb> [args]"},
                             "An Open Inference Protocol (KServe V2) server for TorchScript models: every V2\n"
                             "endpoint over HTTP/1.1, a bearer token by default, a drain on SIGTERM.",
                             {"cohort serve start --repository models --port 0"}},
                            "verb",
                            kVerbs},
                           args);
}

}  // namespace cohort::serve
