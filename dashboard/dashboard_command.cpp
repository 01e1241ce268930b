#include <pwd.h>
#include <unistd.h>

#include <iostream>

#include "common/error.hpp"
#include "common/options.hpp"
#include "dashboard/dashboard.hpp"
#include "lineage/store.hpp"
#include "serve/registry.hpp"
#include "serve/serve_command.hpp"
#include "serve/server.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

options::Help help() {
  return {"dashboard",
          {"[--port P] [--address A] [--token-file F] [--store FILE] [--services DIR]"},
          "A web app over what cohort keeps: your Slurm jobs and launches, sweeps (trials, best\n"
          "trial, plots), pipeline runs (their DAG and task states), models and checkpoints with\n"
          "their lineage, and model servers. It reads the lineage store (COHORT_LINEAGE, or\n"
          "--store) and the directories it names, and writes nothing. It answers only whoever\n"
          "holds its token: open the URL it prints (…/?token=TOKEN) once, and the browser keeps\n"
          "the token in a cookie; programs send 'Authorization: Bearer TOKEN' to /api/.\n"
          "Reach it from your desktop through an SSH tunnel: ssh -L 8888:localhost:8888 LOGIN.\n"
          "docs/dashboard.md describes the pages and the API.",
          {"cohort dashboard --port 8888", "cohort dashboard --port 0 --store /scratch/me/lineage.db"}};
}

std::string user_name() {
  if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
  throw Error("cannot tell who you are (getpwuid of uid " + std::to_string(::getuid()) + " found nothing)");
}

struct Args {
  serve::ServerOptions server;
  fs::path token_file;
  bool auth = true;
  Config config;
};

std::optional<Args> parse(const std::vector<std::string>& args) {
  options::Parser parser(help());
  parser.add()
      ("port", po::value<std::string>()->value_name("P")->default_value("8888"), "the port; 0 takes any free one")
      ("address", po::value<std::string>()->value_name("A")->default_value("127.0.0.1"), "the address to listen on")
      ("token-file", po::value<std::string>()->value_name("FILE"),
       "the token (default: ~/.config/cohort/dashboard-token, created when missing)")
      ("no-auth", "answer anyone who reaches the port: no token asked for")
      ("store", po::value<std::string>()->value_name("FILE"), "the lineage store (default: COHORT_LINEAGE, else the user's)")
      ("services", po::value<std::string>()->value_name("DIR"),
       "where cohort serve submit keeps its services (default: as cohort serve list looks)")
      ("slurm-every", po::value<std::string>()->value_name("SECONDS")->default_value("5"),
       "ask Slurm for your jobs, and where a job writes its batch output, at most once in this long")
      ("scrape-every", po::value<std::string>()->value_name("SECONDS")->default_value("5"),
       "ask a ready service's router and replicas for their metrics at most once in this long");
  auto p = parser.parse(args);
  if (!p) return std::nullopt;
  Args a;
  a.server.port = static_cast<int>(options::whole_number("--port", p->values["port"].as<std::string>(), 0, 65535));
  a.server.address = p->values["address"].as<std::string>();
  a.server.threads = 4;
  a.server.token_cookie = true;
  a.auth = !p->has("no-auth");
  if (!a.auth && p->has("token-file")) throw parser.usage_error("--no-auth and --token-file contradict each other");
  a.token_file = p->has("token-file") ? fs::path(p->values["token-file"].as<std::string>())
                                      : serve::default_token_file().parent_path() / "dashboard-token";
  if (p->has("store")) {
    a.config.store = p->values["store"].as<std::string>();
  } else {
    if (!lineage::Store::enabled()) throw input_error("COHORT_LINEAGE is off: give --store FILE, the lineage store to show");
    a.config.store = lineage::Store::default_path();
  }
  a.config.services = serve::services_root(p->has("services") ? p->values["services"].as<std::string>() : "");
  a.config.slurm_every = std::chrono::seconds(
      options::whole_number("--slurm-every", p->values["slurm-every"].as<std::string>(), 1, 3600));
  a.config.scrape_every = std::chrono::seconds(
      options::whole_number("--scrape-every", p->values["scrape-every"].as<std::string>(), 1, 3600));
  a.config.user = user_name();
  return a;
}

// As Jupyter does: the URL to open, token and all, so that one click (or one copy through
// a tunnel) opens it; the listening line comes last, for whoever waits for it.
void announce(const Args& a, int port) {
  const std::string url = "http://" + a.server.address + ":" + std::to_string(port) + "/";
  if (a.server.token) {
    std::cout << "cohort dashboard: token in " << a.token_file.string() << "\n"
              << "    To open the dashboard, open this URL in a browser:\n"
              << "        " << url << "?token=" << *a.server.token << "\n";
  } else {
    std::cout << "cohort dashboard: --no-auth: anyone who can reach the port sees your jobs\n";
  }
  std::cout << "cohort dashboard: listening on " << url << " (port " << port << ")" << std::endl;
}

}  // namespace

int dashboard_command(const std::vector<std::string>& args) {
  auto a = parse(args);
  if (!a) return 0;
  if (a->auth) a->server.token = serve::read_or_create_token(a->token_file);
  // The store must open now, so that a wrong --store is said once here, not on every page.
  { lineage::Store::open(a->config.store); }
  App app(a->config);
  serve::run_server(app, a->server, [&](int port) { announce(*a, port); });
  std::cerr << "cohort dashboard: stopped\n";
  return 0;
}

}  // namespace cohort::dashboard
