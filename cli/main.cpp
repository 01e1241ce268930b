// cohort — the command-line entry point: a thin dispatcher to each component's command.
#include <boost/program_options.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "common/error.hpp"
#include "common/process.hpp"
#include "common/version.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kUsage = 2;

void print_usage(std::ostream& out) {
  out << "usage: cohort [--version] [--help] <command> [args]\n\n"
         "Kubeflow's machine-learning lifecycle on Slurm: placement, launch, collectives,\n"
         "checkpoints, sweeps and serving, driven from sbatch scripts.\n\n"
         "commands:\n";
  out << "  help [COMMAND]   show this help, or a command's\n";
  out << "  version          print cohort's version and build features\n";
  for (const auto& c : cohort::cli::commands()) {
    std::string name(c.name);
    name.resize(std::max<size_t>(name.size(), 16), ' ');
    out << "  " << name << " " << c.summary << "\n";
  }
  out << "\nexample:\n  cohort help\n  cohort --version\n";
}

void print_version(std::ostream& out) {
  out << "cohort " << cohort::kVersion << " (NCCL backend: " << (cohort::kHaveNccl ? "yes" : "no")
      << ")\n";
}

int exec_tool(const cohort::cli::Command& command, const std::vector<std::string>& args);

int help(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_usage(std::cout);
    return 0;
  }
  if (args.size() > 1) throw cohort::input_error("takes at most one command name");
  if (args[0] == "help" || args[0] == "version") {
    print_usage(std::cout);
    return 0;
  }
  const auto* command = cohort::cli::find_command(args[0]);
  if (!command) {
    throw cohort::input_error("unknown command '" + args[0] + "' (see 'cohort help')");
  }
  // Each command prints its own full help; this forwards to it.
  if (!command->run) return exec_tool(*command, {"--help"});
  return command->run({"--help"});
}

// Runs a command built as its own executable, in this process's place.
int exec_tool(const cohort::cli::Command& command, const std::vector<std::string>& args) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string path = (ec ? std::filesystem::path("") : self.parent_path() / std::string(command.tool)).string();
  std::vector<std::string> argv{path};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv = cohort::c_strings(argv);
  ::execv(path.c_str(), c_argv.data());
  std::cerr << "cohort: " << command.name << ": cannot run " << path << ": " << std::strerror(errno)
            << " (it is installed beside cohort; rebuild or reinstall cohort)\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Options before the command name are cohort's own; everything from the command name
  // on belongs to the command (`cohort topo --help` is topo's help, not cohort's).
  int first = 1;
  while (first < argc && argv[first][0] == '-' && std::string_view(argv[first]) != "--") ++first;
  const bool dash_dash = first < argc && std::string_view(argv[first]) == "--";
  const int command_at = dash_dash ? first + 1 : first;
  std::string command = command_at < argc ? argv[command_at] : "";
  std::vector<std::string> rest(argv + std::min(command_at + 1, argc), argv + argc);

  po::options_description global("options");
  global.add_options()("help,h", "show this help")("version", "print the version");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(first, argv).options(global).run(), vm);
  } catch (const po::error& e) {
    std::cerr << "cohort: " << e.what() << "\n";
    print_usage(std::cerr);
    return kUsage;
  }

  if (command.empty()) {
    if (vm.count("version")) {
      print_version(std::cout);
      return 0;
    }
    if (vm.count("help")) {
      print_usage(std::cout);
      return 0;
    }
    print_usage(std::cerr);
    return kUsage;
  }

  if (command == "help") return cohort::cli::run_guarded(command, &help, rest);
  if (command == "version") {
    if (!rest.empty()) {
      std::cerr << "cohort: version: takes no arguments\n";
      return kUsage;
    }
    print_version(std::cout);
    return 0;
  }
  const auto* found = cohort::cli::find_command(command);
  if (!found) {
    std::cerr << "cohort: unknown command '" << command << "'\n";
    print_usage(std::cerr);
    return kUsage;
  }
  if (!found->run) return exec_tool(*found, rest);
  return cohort::cli::run_guarded(command, found->run, rest);
}
