// `cohort serve submit | status | list`: a KServe InferenceService as one Slurm job of
// replica steps behind a router, and what its registry says of it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>
#include <functional>
#include <thread>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/process.hpp"
#include "common/slurm.hpp"
#include "common/text.hpp"
#include "common/yaml_reader.hpp"
#include "serve/isvc.hpp"
#include "serve/registry.hpp"
#include "serve/scrape.hpp"
#include "serve/serve_command.hpp"
#include "serve/service_commands.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;
using Clock = std::chrono::steady_clock;

// A job Slurm cannot say anything about counts as gone, as it did for the caller before.
bool job_alive(const std::string& job) { return slurm_job_alive(job).value_or(false); }

std::string tail_of(const fs::path& file, std::size_t bytes) {
  const auto text = read_file(file.string()).value_or("");
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

std::vector<std::string> sbatch_argv(const InferenceService& isvc, const fs::path& dir) {
  std::vector<std::string> argv{"sbatch", "--parsable", "--job-name=serve." + isvc.name,
                                "--output=" + (dir / "job.log").string(), "--open-mode=append", "--requeue",
                                // A minute's warning before the time limit or a preemption:
                                // the service drains, then requeues itself (service_job.cpp).
                                "--signal=B:USR1@60"};
  const auto resources = sbatch_resources(isvc, isvc.slurm.allocate);
  argv.insert(argv.end(), resources.begin(), resources.end());
  argv.push_back("--wrap=exec " + shell_quote(cohort_executable()) + " serve job " + shell_quote(dir.string()));
  return argv;
}

// Until the registry says ready, the job ends, or the deadline passes.
Registry wait_ready(const fs::path& dir, const std::string& job, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const Registry r = read_registry(dir);
    if (r.state == "ready") return r;
    if (r.state == "failed" || r.state == "stopped" || !job_alive(job)) {
      throw Error("the service's job " + job + " ended before it was ready (" + r.state + "); its log " +
                  (dir / "job.log").string() + " ends:\n" + tail_of(dir / "job.log", 2000));
    }
    if (Clock::now() > deadline) {
      throw Error("not ready within " + std::to_string(timeout.count()) + " s (state " + r.state + ", job " + job +
                  "); it may still start: see 'cohort serve status " + r.name + "'");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

options::Help submit_help() {
  return {"serve submit",
          {"ISVC.yaml [--dir D] [--wait-timeout SECONDS | --no-wait]"},
          "Serves a KServe InferenceService (serving.kserve.io/v1beta1) as one Slurm job: its\n"
          "minReplicas replicas of `cohort serve start`, each a job step on its own CPUs (and\n"
          "GPUs), behind a router at one URL that asks for the token in D/NAME/token. The spec is\n"
          "checked first (storageUri must hold a model; GPUs need a partition that has them), and\n"
          "nothing is submitted when it is wrong. Waits until the service is ready, then prints\n"
          "its URL. A replica that dies is restarted; scancel drains the service. The job is\n"
          "requeueable: preempted, requeued or warned of its time limit, it drains and comes back\n"
          "at the same name, with a new URL and the same token.",
          {"cohort serve submit mlp.yaml", "cohort serve submit mlp.yaml --dir /shared/services"}};
}

// A service of this name that still runs is not replaced.
void check_not_running(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  if (!fs::exists(registry_path(dir), ec)) return;
  const Registry old = read_registry(dir);
  if (job_alive(old.job)) {
    throw input_error("service " + name + " runs already (job " + old.job + "): see 'cohort serve status " + name +
                      "', or 'scancel " + old.job + "' first");
  }
}

int submit(const std::vector<std::string>& args) {
  options::Parser parser(submit_help());
  parser.operands(1);
  parser.add()("dir", po::value<std::string>()->value_name("D"), "where services live (default: ~/.local/share/cohort/services)")
      ("wait-timeout", po::value<std::string>()->value_name("SECONDS")->default_value("300"), "how long to wait for ready")
      ("no-wait", "print the job id and return once submitted");
  auto p = parser.parse(args);
  if (!p) return 0;
  if (p->operands.empty()) throw parser.usage_error("give the InferenceService spec: cohort serve submit ISVC.yaml");
  const std::string source = p->operands[0];
  const auto timeout = options::whole_number("--wait-timeout", p->values["wait-timeout"].as<std::string>(), 1, 86400);
  InferenceService isvc = read_inference_service_file(source);
  for (const auto& note : isvc.notes) std::cerr << "cohort serve submit: note: " << source << ": " << note << "\n";
  check_storage(isvc, source);
  check_partition(isvc, source, sinfo_gres);
  const fs::path dir = fs::absolute(services_root(p->has("dir") ? p->values["dir"].as<std::string>() : "")) / isvc.name;
  check_not_running(dir, isvc.name);
  make_directories(dir.string(), 0700);
  write_file_atomically(dir / "spec.yaml", yaml::read_spec_file(source, "the InferenceService spec"));
  read_or_create_token(dir / "token");
  Registry registry{.name = isvc.name, .state = "submitted"};
  registry.storage["1"] = fs::absolute(isvc.storage).lexically_normal().string();
  write_registry(dir, registry);
  const auto r = run_process(sbatch_argv(isvc, dir));
  if (!r.ok()) throw Error("sbatch refused the service: " + (r.err.empty() ? r.out : r.err));
  registry.job = r.out.substr(0, r.out.find_first_of(";\n"));
  write_registry(dir, registry);
  if (p->has("no-wait")) {
    std::cout << "cohort serve: " << isvc.name << " submitted as job " << registry.job << "\n";
    return 0;
  }
  const Registry ready = wait_ready(dir, registry.job, std::chrono::seconds(timeout));
  std::cout << "cohort serve: " << isvc.name << " ready at " << ready.url << " (job " << ready.job << ", "
            << ready.replicas.size() << " replicas); token in " << (dir / "token").string() << "\n"
            << "    curl -H \"Authorization: Bearer $(cat " << shell_quote((dir / "token").string()) << ")\" "
            << ready.url << "/models\n";
  return 0;
}

struct DirArgs {
  fs::path root;
  std::vector<std::string> operands;
  bool json = false;
};

std::optional<DirArgs> parse_dir_args(const options::Help& help, const std::vector<std::string>& args, int operands) {
  options::Parser parser(help);
  parser.operands(operands);
  parser.add()("dir", po::value<std::string>()->value_name("D"), "where services live (as for 'cohort serve submit')")
      ("json", "print JSON");
  auto p = parser.parse(args);
  if (!p) return std::nullopt;
  if (static_cast<int>(p->operands.size()) < operands) throw parser.usage_error("give the service's name");
  return DirArgs{services_root(p->has("dir") ? p->values["dir"].as<std::string>() : ""), p->operands, p->has("json")};
}

fs::path service_dir(const fs::path& root, const std::string& name) {
  if (!is_object_name(name)) throw input_error("'" + name + "' is not a service's name: see 'cohort serve list'");
  const fs::path dir = root / name;
  std::error_code ec;
  if (!fs::exists(registry_path(dir), ec)) {
    throw input_error("no service '" + name + "' in " + root.string() + ": see 'cohort serve list'");
  }
  return dir;
}

// Requests a second through the router, from two scrapes of its metrics a second apart.
std::optional<double> request_rate(const Registry& r, const std::string& token, const std::optional<std::string>& first) {
  if (!first) return std::nullopt;
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto second = scrape_get(r.url, "/metrics", token);
  if (!second) return std::nullopt;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return (metric_total(*second, "cohort_router_requests_total") - metric_total(*first, "cohort_router_requests_total")) / seconds;
}

std::string number_text(double v, int decimals) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << v;
  return out.str();
}

// "replicas: 2 ready, desired 2 (min 1, max 3); last decision 12 s ago: up 1 -> 2: ...".
std::string autoscale_line(const Registry& r, long long ready) {
  std::string line = "replicas: " + std::to_string(ready) + " ready, desired " + std::to_string(r.desired) + " (min " +
                     std::to_string(r.min_replicas) + ", max " + std::to_string(r.max_replicas) + "); ";
  if (r.decided_at == 0) return line + "no scaling decision yet";
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  return line + "last decision " + std::to_string(std::max(0LL, static_cast<long long>(now.count()) - r.decided_at)) +
         " s ago: " + r.decision;
}

// Per replica: what the router sent it; for the service: p50 and p99 of the replicas' own
// request times, from their histograms.
int status(const std::vector<std::string>& args) {
  auto a = parse_dir_args({"serve status", {"NAME [--dir D] [--json]"},
                           "A service's replicas (node, address, version, state, restarts, the requests the\n"
                           "router sent each), its traffic split by version, p50/p99 of the replicas'\n"
                           "request times, from their /metrics, and the autoscaler's desired count and last\n"
                           "decision with its reason.",
                           {"cohort serve status mlp"}},
                          args, 1);
  if (!a) return 0;
  const fs::path dir = service_dir(a->root, a->operands[0]);
  const Registry r = read_registry(dir);
  const std::string token = read_or_create_token(dir / "token");
  const auto router = r.state == "ready" ? scrape_get(r.url, "/metrics", token) : std::nullopt;
  const auto rate = request_rate(r, token, router);
  std::vector<std::string> replica_metrics;
  json::Value replicas = json::Value::array();
  std::vector<std::vector<std::string>> rows{{"REPLICA", "NODE", "ADDRESS", "VERSION", "STATE", "RESTARTS", "REQUESTS"}};
  for (const auto& x : r.replicas) {
    const std::string name = x.host + ":" + std::to_string(x.port);
    const auto sent = router ? metric_sample(*router, "cohort_router_requests_total", "replica=\"" + name + "\"") : std::nullopt;
    if (x.state == "ready") {
      if (auto m = scrape_get("http://" + name + "/v2", "/metrics", token)) replica_metrics.push_back(*m);
    }
    rows.push_back({std::to_string(x.id), x.node, name, x.version, x.state, std::to_string(x.restarts),
                    sent ? number_text(*sent, 0) : "-"});
    replicas.push(json::Object{{"id", x.id}, {"node", x.node}, {"address", name}, {"version", x.version},
                               {"state", x.state}, {"restarts", x.restarts}, {"job", x.job},
                               {"requests", sent ? json::Value(static_cast<long long>(*sent)) : json::Value()}});
  }
  const auto p50 = histogram_quantile(replica_metrics, "cohort_inference_request_duration_seconds", 0.50);
  const auto p99 = histogram_quantile(replica_metrics, "cohort_inference_request_duration_seconds", 0.99);
  std::string split;
  json::Value traffic = json::Value::object();
  for (const auto& [version, percent] : r.traffic) {
    split += (split.empty() ? "" : ", ") + std::string("version ") + version + ": " + std::to_string(percent) + " %";
    traffic.set(version, percent);
  }
  const auto ready_count = std::ranges::count_if(r.replicas, [](const RegistryReplica& x) { return x.state == "ready"; });
  if (a->json) {
    auto q = [](std::optional<double> v) { return v && std::isfinite(*v) ? json::Value(*v) : json::Value(); };
    const json::Value autoscale(json::Object{{"min", r.min_replicas}, {"max", r.max_replicas},
                                             {"current", static_cast<long long>(ready_count)}, {"desired", r.desired},
                                             {"decision", r.decision}, {"decided_at", r.decided_at}});
    std::cout << json::write(json::Object{{"name", r.name}, {"state", r.state}, {"job", r.job},
                                          {"requeues", r.requeues}, {"url", r.url},
                                          {"traffic", traffic}, {"requests_per_s", q(rate)}, {"p50_s", q(p50)},
                                          {"p99_s", q(p99)}, {"autoscale", autoscale},
                                          {"replicas", replicas}}, 2)
              << "\n";
    return 0;
  }
  auto ms = [](std::optional<double> v) { return !v ? "-" : std::isfinite(*v) ? "<= " + number_text(*v * 1000, 1) + " ms" : "> the largest bucket"; };
  std::cout << r.name << ": " << r.state << ", job " << r.job
            << (r.requeues > 0 ? ", requeued " + std::to_string(r.requeues) + "x" : "") << ", "
            << (r.url.empty() ? "no URL yet" : r.url) << "\n"
            << "traffic: " << (split.empty() ? "-" : split) << "; "
            << (rate ? number_text(*rate, 1) + " requests/s" : std::string("rate -")) << "; request time p50 " << ms(p50) << ", p99 " << ms(p99)
            << "\n"
            << autoscale_line(r, ready_count) << "\n";
  print_table(std::cout, rows);
  return 0;
}

int list(const std::vector<std::string>& args) {
  auto a = parse_dir_args({"serve list", {"[--dir D] [--json]"}, "The services submitted, with their state, job and URL.",
                           {"cohort serve list"}},
                          args, 0);
  if (!a) return 0;
  std::vector<std::vector<std::string>> rows{{"NAME", "STATE", "JOB", "REPLICAS", "URL"}};
  json::Value out = json::Value::array();
  std::error_code ec;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(a->root, ec)) {
    if (fs::exists(registry_path(e.path()), ec)) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const Registry r = read_registry(dir);
    rows.push_back({r.name, r.state, r.job, std::to_string(r.replicas.size()), r.url.empty() ? "-" : r.url});
    out.push(json::Object{{"name", r.name}, {"state", r.state}, {"job", r.job},
                          {"replicas", static_cast<long long>(r.replicas.size())}, {"url", r.url}});
  }
  if (a->json) std::cout << json::write(out, 2) << "\n";
  else print_table(std::cout, rows);
  return 0;
}

// Until `done` holds of the registry; the job ending or the deadline passing is an error.
Registry wait_for(const fs::path& dir, const std::string& what, const std::function<bool(const Registry&)>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (true) {
    const Registry r = read_registry(dir);
    if (done(r)) return r;
    if (!job_alive(r.job)) throw Error("the service's job " + r.job + " ended before " + what + "; see " + (dir / "job.log").string());
    if (Clock::now() > deadline) throw Error("no " + what + " within 300 s: see " + (dir / "job.log").string());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

bool one_version(const Registry& r) {
  if (r.traffic.size() != 1 || r.storage.size() != 1) return false;
  return std::ranges::all_of(r.replicas, [&](const RegistryReplica& x) { return x.version == r.traffic.begin()->first && x.state == "ready"; });
}

// Hands the job a rollout request; one at a time.
Registry request_rollout(const fs::path& dir, const json::Value& request) {
  const Registry r = read_registry(dir);
  if (r.state != "ready" || !job_alive(r.job)) throw input_error("service " + r.name + " is " + r.state + ", not ready: see 'cohort serve status " + r.name + "'");
  std::error_code ec;
  if (fs::exists(dir / "rollout.json", ec)) throw input_error("service " + r.name + " has a rollout under way already: wait for it");
  write_file_atomically(dir / "rollout.json", json::write(request) + "\n");
  return r;
}

options::Help rollout_help(const std::string& verb) {
  if (verb == "update") {
    return {"serve update",
            {"NAME --storage-uri PATH [--canary PERCENT] [--dir D]"},
            "Serves a new model. With --canary, one replica of it starts and, once ready, takes PERCENT\n"
            "of the requests; then 'cohort serve promote NAME' or 'cohort serve rollback NAME'.\n"
            "Without, a rolling update: a new replica in, then an old one out, one at a time.",
            {"cohort serve update mlp --storage-uri /shared/models/mlp-v2 --canary 20"}};
  }
  return {"serve " + verb,
          {"NAME [--dir D]"},
          verb == "promote" ? "The canary takes all requests; the old version's replicas drain and stop."
                            : "The old version takes all requests again; the canary's replicas drain and stop.",
          {"cohort serve " + verb + " mlp"}};
}

int update(const std::vector<std::string>& args) {
  options::Parser parser(rollout_help("update"));
  parser.operands(1);
  parser.add()("storage-uri", po::value<std::string>()->value_name("PATH"), "the new model: a repository or a model file")
      ("canary", po::value<std::string>()->value_name("PERCENT"), "the new version's share of requests, 1..99")
      ("dir", po::value<std::string>()->value_name("D"), "where services live (as for 'cohort serve submit')");
  auto p = parser.parse(args);
  if (!p) return 0;
  if (p->operands.empty() || !p->has("storage-uri")) throw parser.usage_error("give NAME and --storage-uri PATH");
  const fs::path dir = service_dir(services_root(p->has("dir") ? p->values["dir"].as<std::string>() : ""), p->operands[0]);
  const int canary = p->has("canary") ? static_cast<int>(options::whole_number("--canary", p->values["canary"].as<std::string>(), 1, 99)) : 0;
  InferenceService next;
  next.storage = p->values["storage-uri"].as<std::string>();
  if (next.storage.string().starts_with("file://")) next.storage = next.storage.string().substr(7);
  check_storage(next, "--storage-uri");
  const Registry before = read_registry(dir);
  if (before.storage.size() > 1) throw input_error("service " + before.name + " has a canary: promote or roll it back first");
  long long newest = before.newest_version;
  for (const auto& [version, _] : before.storage) newest = std::max(newest, std::stoll(version));
  const std::string version = std::to_string(newest + 1);
  request_rollout(dir, json::Object{{"action", "update"}, {"version", version},
                                    {"storage", fs::absolute(next.storage).lexically_normal().string()}, {"canary", canary}});
  const Registry r = wait_for(dir, canary ? "the canary took its share" : "the rolling update ended", [&](const Registry& x) {
    if (!canary) return one_version(x) && x.traffic.count(version);
    return x.traffic.count(version) && x.traffic.at(version) == canary;
  });
  std::cout << "cohort serve: " << r.name << " version " << version << (canary ? " takes " + std::to_string(canary) + " % of requests" : " takes all requests") << "\n";
  return 0;
}

int finish_rollout(const std::vector<std::string>& args, const std::string& verb) {
  auto a = parse_dir_args(rollout_help(verb), args, 1);
  if (!a) return 0;
  const fs::path dir = service_dir(a->root, a->operands[0]);
  if (read_registry(dir).storage.size() < 2) throw input_error("service " + a->operands[0] + " has no canary to " + verb);
  request_rollout(dir, json::Object{{"action", verb}});
  const Registry r = wait_for(dir, "the " + verb, one_version);
  std::cout << "cohort serve: " << r.name << ": version " << r.traffic.begin()->first << " takes all requests\n";
  return 0;
}

}  // namespace

int update_command(const std::vector<std::string>& args) { return update(args); }
int promote_command(const std::vector<std::string>& args) { return finish_rollout(args, "promote"); }
int rollback_command(const std::vector<std::string>& args) { return finish_rollout(args, "rollback"); }
int submit_command(const std::vector<std::string>& args) { return submit(args); }
int status_command(const std::vector<std::string>& args) { return status(args); }
int list_command(const std::vector<std::string>& args) { return list(args); }

}  // namespace cohort::serve
