#include "checkpoint/ckpt_command.hpp"

#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>

#include "checkpoint/bench.hpp"
#include "checkpoint/checkpoint.hpp"
#include "checkpoint/export.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "common/error.hpp"
#include "common/progress.hpp"
#include "common/text.hpp"

namespace cohort::checkpoint {

using namespace detail;
namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "usage: cohort ckpt <verb> [args]\n\n"
    "HDF5 checkpoints written by cohort's checkpointer (docs/checkpoint-format.md).\n\n"
    "verbs:\n"
    "  ls DIR                       list the committed checkpoints in DIR\n"
    "  inspect PATH                 tensors, dtypes, shapes, bytes and metadata of a checkpoint\n"
    "                               (PATH is a step-XXXXXXXX directory, or DIR for its newest)\n"
    "  verify PATH|DIR              check every tensor's checksum; exit 0 only when all match\n"
    "  prune DIR --keep-last N [--keep-every M]\n"
    "                               remove old checkpoints; the newest good one always stays\n"
    "  export PATH --to safetensors|npz OUT\n"
    "                               write the tensors for PyTorch or NumPy\n"
    "  bench --dir D [--bytes N] [--tensors K] [--async]\n"
    "                               save/load throughput against raw write+fsync and read\n\n"
    "ls, inspect and verify take --json.\n\n"
    "example:\n"
    "  cohort ckpt ls /scratch/run1/ckpt\n"
    "  cohort ckpt verify /scratch/run1/ckpt/step-00001000\n"
    "  cohort ckpt prune /scratch/run1/ckpt --keep-last 3 --keep-every 1000\n"
    "  cohort ckpt export /scratch/run1/ckpt --to npz model.npz\n";

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

struct Parsed {
  po::variables_map vm;
  std::vector<std::string> positional;
};

// Parses one verb's options; `--help` prints `help` and returns nullopt.
std::optional<Parsed> parse(const std::vector<std::string>& args, po::options_description& options,
                            const std::string& help) {
  options.add_options()("help,h", "show this help");
  po::options_description all;
  all.add(options);
  all.add_options()("positional", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("positional", -1);
  Parsed parsed;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), parsed.vm);
  po::notify(parsed.vm);
  if (parsed.vm.count("help")) {
    std::cout << help << "\n" << options << "\n";
    return std::nullopt;
  }
  if (parsed.vm.count("positional")) parsed.positional = parsed.vm["positional"].as<std::vector<std::string>>();
  return parsed;
}

std::string one_path(const Parsed& p, const char* verb, const char* what) {
  if (p.positional.size() != 1) {
    throw input_error(std::string(verb) + ": expected one " + what + ", got " + std::to_string(p.positional.size()) +
                      " (see 'cohort ckpt " + verb + " --help')");
  }
  return p.positional[0];
}

int ls(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("json", "print JSON instead of a table");
  auto p = parse(args, options,
                 "usage: cohort ckpt ls DIR [--json]\n\nLists the committed checkpoints in DIR, oldest first.\n\n"
                 "example:\n  cohort ckpt ls /scratch/run1/ckpt");
  if (!p) return 0;
  fs::path dir = one_path(*p, "ls", "checkpoint directory");
  auto entries = list(dir);
  json::Value out = json::Value::array();
  std::vector<std::vector<std::string>> rows{{"STEP", "TIME", "RANKS", "TENSORS", "BYTES", "LATEST", "PATH"}};
  for (const auto& e : entries) {
    json::Value row = json::Value::object();
    row.set("step", e.step);
    row.set("path", e.path.string());
    row.set("latest", e.latest);
    try {
      Manifest m = read_manifest(e.path);
      row.set("time", m.time);
      row.set("world_size", m.world_size);
      row.set("tensors", static_cast<long long>(m.tensors.size()));
      row.set("bytes", m.tensor_bytes());
      rows.push_back({std::to_string(e.step), m.time, std::to_string(m.world_size), std::to_string(m.tensors.size()),
                      human_bytes(m.tensor_bytes()), e.latest ? "*" : "", e.path.string()});
    } catch (const Error& err) {
      row.set("error", err.what());
      rows.push_back({std::to_string(e.step), "unreadable manifest", "-", "-", "-", e.latest ? "*" : "",
                      e.path.string()});
    }
    out.push(std::move(row));
  }
  if (p->vm.count("json")) {
    std::cout << json::write(out, 2) << "\n";
  } else if (entries.empty()) {
    std::cout << "no checkpoints in " << dir.string() << "\n";
  } else {
    print_table(std::cout, rows);
  }
  return 0;
}

int inspect(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("json", "print JSON instead of a table");
  auto p = parse(args, options,
                 "usage: cohort ckpt inspect PATH [--json]\n\nShows a checkpoint's tensors and metadata; PATH is a "
                 "step-XXXXXXXX directory, or a checkpoint directory for its newest checkpoint.\n\n"
                 "example:\n  cohort ckpt inspect /scratch/run1/ckpt/step-00001000 --json");
  if (!p) return 0;
  fs::path path = resolve_checkpoint(one_path(*p, "inspect", "checkpoint path"));
  Manifest m = read_manifest(path);
  if (p->vm.count("json")) {
    json::Value out = manifest_to_json(m);
    out.set("path", path.string());
    std::cout << json::write(out, 2) << "\n";
    return 0;
  }
  std::cout << "checkpoint  " << path.string() << "\n"
            << "step        " << m.step << "\n"
            << "time        " << m.time << "\n"
            << "ranks       " << m.world_size << "\n"
            << "bytes       " << human_bytes(m.tensor_bytes()) << " in " << m.tensors.size() << " tensor(s), "
            << human_bytes(m.state_bytes) << " on disk\n"
            << "epoch       " << m.metadata.epoch << "\n"
            << "hyperparams " << json::write(m.metadata.hyperparameters) << "\n"
            << "rng         " << json::write(m.metadata.rng) << "\n"
            << "attributes  " << json::write(m.metadata.attributes) << "\n\n";
  std::vector<std::vector<std::string>> rows{{"NAME", "DTYPE", "SHAPE", "SHARDING", "BYTES", "CRC32C"}};
  for (const auto& t : m.tensors) {
    rows.push_back({t.name, std::string(to_string(t.dtype)), shape_text(t.shape), std::string(to_string(t.sharding)),
                    human_bytes(t.bytes) + (t.compressed ? " (deflate)" : ""), hex32(t.crc32c)});
  }
  print_table(std::cout, rows);
  return 0;
}

int verify_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("json", "print JSON instead of a table");
  auto p = parse(args, options,
                 "usage: cohort ckpt verify PATH|DIR [--json]\n\nReads every tensor and compares its CRC32C with "
                 "the manifest. PATH checks one checkpoint, DIR all of them. Exits 0 only when every checksum "
                 "matches, 1 when any checkpoint is damaged.\n\nexample:\n  cohort ckpt verify /scratch/run1/ckpt");
  if (!p) return 0;
  fs::path path = one_path(*p, "verify", "checkpoint path or directory");
  std::vector<fs::path> targets;
  if (is_checkpoint(path) || !fs::is_directory(path)) {
    targets.push_back(path);
  } else {
    for (const auto& e : list(path)) targets.push_back(e.path);
    if (targets.empty()) {
      throw input_error(path.string() + " holds no checkpoints; give a checkpoint directory or a step-XXXXXXXX one");
    }
  }
  bool all_ok = true;
  json::Value out = json::Value::array();
  std::vector<std::vector<std::string>> rows{{"CHECKPOINT", "RESULT"}};
  for (const auto& target : targets) {
    std::uint64_t total = 0;
    try {
      for (const auto& t : read_manifest(target).tensors) total += t.bytes;
    } catch (const Error&) {
      // verify() reports an unreadable manifest as damage; the progress line just stays empty.
    }
    Progress progress("ckpt verify " + target.filename().string(), total);
    VerifyReport r = verify(target, [&](std::uint64_t bytes) { progress.advance(bytes); });
    all_ok = all_ok && r.ok();
    json::Value problems = json::Value::array();
    for (const auto& pr : r.problems) {
      problems.push(json::Object{{"tensor", json::Value(pr.tensor)}, {"message", json::Value(pr.message)}});
      rows.push_back({target.string(), pr.tensor.empty() ? "FAILED: " + pr.message
                                                         : "FAILED: tensor '" + pr.tensor + "': " + pr.message});
    }
    if (r.ok()) rows.push_back({target.string(), "ok"});
    out.push(json::Object{{"path", json::Value(target.string())},
                          {"step", json::Value(r.step)},
                          {"ok", json::Value(r.ok())},
                          {"problems", std::move(problems)}});
  }
  if (p->vm.count("json")) std::cout << json::write(out, 2) << "\n";
  else print_table(std::cout, rows);
  return all_ok ? 0 : 1;
}

int prune_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  std::int64_t keep_last = 0, keep_every = 0;
  options.add_options()("keep-last", po::value(&keep_last)->required(), "keep the newest N checkpoints (N >= 1)")(
      "keep-every", po::value(&keep_every), "also keep checkpoints whose step is a multiple of M")(
      "json", "print the removed steps as JSON");
  auto p = parse(args, options,
                 "usage: cohort ckpt prune DIR --keep-last N [--keep-every M]\n\nRemoves checkpoints that neither "
                 "rule keeps; the newest checkpoint that verifies is always kept. Also removes leftovers of "
                 "interrupted saves.\n\nexample:\n  cohort ckpt prune /scratch/run1/ckpt --keep-last 3 --keep-every 1000");
  if (!p) return 0;
  fs::path dir = one_path(*p, "prune", "checkpoint directory");
  if (keep_last < 1) throw input_error("--keep-last " + std::to_string(keep_last) + ": must be at least 1");
  if (keep_every < 0) throw input_error("--keep-every " + std::to_string(keep_every) + ": must not be negative");
  auto removed = prune(dir, {keep_last, keep_every});
  if (p->vm.count("json")) {
    json::Value out = json::Value::array();
    for (auto s : removed) out.push(json::Value(s));
    std::cout << json::write(json::Object{{"removed", std::move(out)}}) << "\n";
  } else if (removed.empty()) {
    std::cout << "nothing to prune in " << dir.string() << "\n";
  } else {
    for (auto s : removed) std::cout << "removed " << checkpoint_path(dir, s).string() << "\n";
  }
  return 0;
}

}  // namespace

int ckpt_command(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string& verb = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (verb == "--help" || verb == "-h" || verb == "help") {
    std::cout << kUsage;
    return 0;
  }
  int (*run)(const std::vector<std::string>&) = nullptr;
  if (verb == "ls") run = ls;
  else if (verb == "inspect") run = inspect;
  else if (verb == "verify") run = verify_command;
  else if (verb == "prune") run = prune_command;
  else if (verb == "export") run = export_command;
  else if (verb == "bench") run = bench_command;
  else throw input_error("unknown verb '" + verb + "' (verbs: ls, inspect, verify, prune, export, bench; see 'cohort ckpt --help')");
  // Errors name the verb: "cohort: ckpt: verify: …".
  try {
    return run(rest);
  } catch (const Error& e) {
    throw Error(verb + ": " + e.what(), e.kind());
  } catch (const po::error& e) {
    throw input_error(verb + ": " + e.what() + " (see 'cohort ckpt " + verb + " --help')");
  }
}

}  // namespace cohort::checkpoint
