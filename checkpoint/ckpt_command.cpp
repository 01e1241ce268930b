#include "checkpoint/ckpt_command.hpp"

#include <cstdio>
#include <iostream>
#include <sstream>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/export.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/manifest.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "common/progress.hpp"
#include "common/text.hpp"

namespace cohort::checkpoint {

using namespace detail;
namespace po = options::po;

namespace {

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

// One verb's parser: its help, --json when `json` is true, and any number of operands
// (the verb checks how many it got, saying which it expected).
options::Parser verb_parser(options::Help help, bool json = true) {
  options::Parser parser(std::move(help));
  if (json) parser.add()("json", "print JSON instead of a table");
  parser.operands(-1);
  return parser;
}

std::string one_path(const options::Parsed& p, const options::Parser& parser, const char* what) {
  if (p.operands.size() != 1) {
    throw parser.usage_error(std::string("expected one ") + what + ", got " + std::to_string(p.operands.size()));
  }
  return p.operands[0];
}

int ls(const std::vector<std::string>& args) {
  auto parser = verb_parser({"ckpt ls", {"DIR [--json]"}, "Lists the committed checkpoints in DIR, oldest first.",
                             {"cohort ckpt ls /scratch/run1/ckpt"}});
  auto p = parser.parse(args);
  if (!p) return 0;
  fs::path dir = one_path(*p, parser, "checkpoint directory");
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
  if (p->has("json")) {
    std::cout << json::write(out, 2) << "\n";
  } else if (entries.empty()) {
    std::cout << "no checkpoints in " << dir.string() << "\n";
  } else {
    print_table(std::cout, rows);
  }
  return 0;
}

std::string layout_text(const Manifest& m) {
  if (m.format_version < 2) return std::string("one ") + std::string(kStateFile) + " for all ranks";
  return std::string(kStateFile) + " indexing " + std::to_string(m.files.size() - 1) + " rank file(s)";
}

// The files holding a tensor's pieces: "rank-00000.h5", "rank-00000.h5 … rank-00003.h5 (4)".
std::string stored_in(const TensorInfo& t) {
  if (t.pieces.empty()) return std::string(kStateFile);
  if (t.pieces.size() == 1) return t.pieces[0].file;
  return t.pieces.front().file + " … " + t.pieces.back().file + " (" + std::to_string(t.pieces.size()) + ")";
}

int inspect(const std::vector<std::string>& args) {
  auto parser = verb_parser({"ckpt inspect",
                             {"PATH [--json]"},
                             "Shows a checkpoint's tensors and metadata; PATH is a step-XXXXXXXX directory, or a\n"
                             "checkpoint directory for its newest checkpoint.",
                             {"cohort ckpt inspect /scratch/run1/ckpt/step-00001000 --json"}});
  auto p = parser.parse(args);
  if (!p) return 0;
  fs::path path = resolve_checkpoint(one_path(*p, parser, "checkpoint path"));
  Manifest m = read_manifest(path);
  if (p->has("json")) {
    json::Value out = manifest_to_json(m);
    out.set("path", path.string());
    std::cout << json::write(out, 2) << "\n";
    return 0;
  }
  std::uint64_t disk_bytes = 0;
  for (const auto& f : m.files) disk_bytes += f.bytes;
  std::cout << "checkpoint  " << path.string() << "\n"
            << "step        " << m.step << "\n"
            << "time        " << m.time << "\n"
            << "ranks       " << m.world_size << "\n"
            << "bytes       " << human_bytes(m.tensor_bytes()) << " in " << m.tensors.size() << " tensor(s), "
            << human_bytes(disk_bytes) << " on disk\n"
            << "format      " << m.format_version << " (" << layout_text(m) << ")\n"
            << "epoch       " << m.metadata.epoch << "\n"
            << "hyperparams " << json::write(m.metadata.hyperparameters) << "\n"
            << "rng         " << json::write(m.metadata.rng) << "\n"
            << "attributes  " << json::write(m.metadata.attributes) << "\n\n";
  std::vector<std::vector<std::string>> rows{{"NAME", "DTYPE", "SHAPE", "SHARDING", "BYTES", "CRC32C", "STORED IN"}};
  for (const auto& t : m.tensors) {
    rows.push_back({t.name, std::string(to_string(t.dtype)), shape_text(t.shape), std::string(to_string(t.sharding)),
                    human_bytes(t.bytes) + (t.compressed ? " (deflate)" : ""), hex32(t.crc32c), stored_in(t)});
  }
  print_table(std::cout, rows);
  return 0;
}

int verify_command(const std::vector<std::string>& args) {
  auto parser = verb_parser({"ckpt verify",
                             {"PATH|DIR [--json]"},
                             "Reads every tensor and compares its CRC32C with the manifest. PATH checks one\n"
                             "checkpoint, DIR all of them. Exits 0 only when every checksum matches, 1 when any\n"
                             "checkpoint is damaged.",
                             {"cohort ckpt verify /scratch/run1/ckpt"}});
  auto p = parser.parse(args);
  if (!p) return 0;
  fs::path path = one_path(*p, parser, "checkpoint path or directory");
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
  if (p->has("json")) std::cout << json::write(out, 2) << "\n";
  else print_table(std::cout, rows);
  return all_ok ? 0 : 1;
}

int prune_command(const std::vector<std::string>& args) {
  std::int64_t keep_last = 0, keep_every = 0;
  auto parser = verb_parser({"ckpt prune",
                             {"DIR --keep-last N [--keep-every M] [--json]"},
                             "Removes checkpoints that neither rule keeps; the newest checkpoint that verifies is\n"
                             "always kept. Also removes leftovers of interrupted saves.",
                             {"cohort ckpt prune /scratch/run1/ckpt --keep-last 3 --keep-every 1000"}},
                            false);
  parser.add()("keep-last", po::value(&keep_last)->required()->value_name("N"), "keep the newest N checkpoints (N >= 1)")(
      "keep-every", po::value(&keep_every)->value_name("M"), "also keep checkpoints whose step is a multiple of M")(
      "json", "print the removed steps as JSON");
  auto p = parser.parse(args);
  if (!p) return 0;
  fs::path dir = one_path(*p, parser, "checkpoint directory");
  if (keep_last < 1) throw input_error("--keep-last " + std::to_string(keep_last) + ": must be at least 1");
  if (keep_every < 0) throw input_error("--keep-every " + std::to_string(keep_every) + ": must not be negative");
  auto removed = prune(dir, {keep_last, keep_every});
  if (p->has("json")) {
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

constexpr options::Subcommand kVerbs[] = {
    {"ls", "DIR", "list the committed checkpoints in DIR", &ls},
    {"inspect", "PATH", "tensors, dtypes, shapes, bytes and metadata of a checkpoint", &inspect},
    {"verify", "PATH|DIR", "check every tensor's checksum; exit 0 only when all match", &verify_command},
    {"prune", "DIR --keep-last N [--keep-every M]", "remove old checkpoints; the newest good one always stays",
     &prune_command},
    {"export", "PATH --to safetensors|npz OUT", "write the tensors for PyTorch or NumPy", &export_command},
};

}  // namespace

int ckpt_command(const std::vector<std::string>& args) {
  // Errors name the verb: "cohort: ckpt: verify: …".
  return options::dispatch({{"ckpt",
                             {"<verb> [args]"},
                             "HDF5 checkpoints written by cohort's checkpointer (docs/checkpoint-format.md). PATH\n"
                             "is a step-XXXXXXXX directory, or a checkpoint directory for its newest checkpoint;\n"
                             "ls, inspect and verify take --json. Save and load throughput: `cohort bench ckpt`.",
                             {"cohort ckpt ls /scratch/run1/ckpt", "cohort ckpt verify /scratch/run1/ckpt/step-00001000",
                              "cohort ckpt prune /scratch/run1/ckpt --keep-last 3 --keep-every 1000",
                              "cohort ckpt export /scratch/run1/ckpt --to npz model.npz"}},
                            "verb",
                            kVerbs},
                           args);
}

}  // namespace cohort::checkpoint
