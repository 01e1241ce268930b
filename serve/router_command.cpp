// `cohort serve router`: the router (router.hpp) served by the HTTP server (server.hpp).
#include <iostream>
#include <map>

#include "common/error.hpp"
#include "common/options.hpp"
#include "common/text.hpp"
#include "serve/router.hpp"
#include "serve/serve_command.hpp"
#include "serve/server.hpp"
#include "serve/service_commands.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
namespace po = options::po;

options::Help router_help() {
  return {"serve router",
          {"--replica HOST:PORT[=VERSION] ... [options]"},
          "One URL in front of replicas of `cohort serve start`: each V2 request goes to the\n"
          "ready replica with the fewest requests under way; a replica that fails is ejected\n"
          "until its /v2/health/ready answers again, and the request it failed is retried on\n"
          "another. With --traffic, each version takes its percent of the requests (a canary).\n"
          "The router asks for the token in --token-file and sends the same token to the\n"
          "replicas; GET /metrics gives its counts per replica. SIGTERM drains it.",
          {"cohort serve router --replica node1:8001 --replica node2:8001 --port 8000",
           "cohort serve router --replica n1:8001=1 --replica n2:8001=2 --traffic 1=80 --traffic 2=20"}};
}

std::map<std::string, int> read_traffic(const std::vector<std::string>& given) {
  std::map<std::string, int> traffic;
  int total = 0;
  for (const auto& t : given) {
    const auto eq = t.find('=');
    const auto percent = eq == std::string::npos ? std::nullopt : parse_integer(std::string_view(t).substr(eq + 1), 0, 100);
    if (!percent || eq == 0) throw input_error("--traffic " + t + ": expected VERSION=PERCENT, a percent of 0..100");
    traffic[t.substr(0, eq)] = static_cast<int>(*percent);
    total += static_cast<int>(*percent);
  }
  if (!given.empty() && total != 100) {
    throw input_error("--traffic: the percents add up to " + std::to_string(total) + ", not 100");
  }
  return traffic;
}

}  // namespace

int router_command(const std::vector<std::string>& args) {
  options::Parser parser(router_help());
  parser.add()
      ("replica", po::value<std::vector<std::string>>()->value_name("HOST:PORT[=VERSION]"), "a replica (repeatable)")
      ("traffic", po::value<std::vector<std::string>>()->value_name("VERSION=PERCENT"), "a version's share (repeatable)")
      ("address", po::value<std::string>()->value_name("A")->default_value("127.0.0.1"), "the address to listen on")
      ("port", po::value<std::string>()->value_name("P")->default_value("8000"), "the port; 0 takes any free one")
      ("threads", po::value<std::string>()->value_name("T")->default_value("2"), "threads serving clients, and as many forwarding")
      ("replica-concurrency", po::value<std::string>()->value_name("N")->default_value("0"),
       "requests a replica takes at once (KServe's containerConcurrency); more wait at the router; 0: no bound")
      ("token-file", po::value<std::string>()->value_name("FILE"), "the bearer token (default: ~/.config/cohort/serve-token)")
      ("no-auth", "answer anyone, and send replicas no token");
  auto p = parser.parse(args);
  if (!p) return 0;
  if (!p->has("replica")) throw parser.usage_error("give at least one --replica HOST:PORT");
  std::vector<ReplicaAddress> replicas;
  for (const auto& r : p->values["replica"].as<std::vector<std::string>>()) replicas.push_back(parse_replica("--replica", r));
  const auto traffic = read_traffic(p->has("traffic") ? p->values["traffic"].as<std::vector<std::string>>() : std::vector<std::string>{});
  ServerOptions server;
  server.address = p->values["address"].as<std::string>();
  server.port = static_cast<int>(options::whole_number("--port", p->values["port"].as<std::string>(), 0, 65535));
  server.threads = static_cast<int>(options::whole_number("--threads", p->values["threads"].as<std::string>(), 1, 1024));
  const bool auth = !p->has("no-auth");
  if (!auth && p->has("token-file")) throw parser.usage_error("--no-auth and --token-file contradict each other");
  const fs::path token_file = p->has("token-file") ? fs::path(p->values["token-file"].as<std::string>()) : default_token_file();
  RouterOptions options;
  options.threads = server.threads;
  options.replica_concurrency = static_cast<int>(
      options::whole_number("--replica-concurrency", p->values["replica-concurrency"].as<std::string>(), 0, 1000000));
  if (auth) server.token = options.replica_token = read_or_create_token(token_file);
  Router router(options);
  router.set_replicas(replicas);
  router.set_traffic(traffic);
  run_server(router, server, [&](int port) {
    if (auth) std::cout << "cohort serve router: token in " << token_file.string() << "\n";
    std::cout << "cohort serve router: listening on http://" << server.address << ":" << port << "/v2 (port " << port
              << ")" << std::endl;
  });
  std::cerr << "cohort serve router: drained; exiting\n";
  return 0;
}

}  // namespace cohort::serve
