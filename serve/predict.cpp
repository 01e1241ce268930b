#include "serve/predict.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "common/progress.hpp"
#include "common/text.hpp"
#include "serve/npy.hpp"
#include "serve/predict_io.hpp"
#include "serve/repository.hpp"
#include "serve/runtime.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
using detail::ArrayInfo;
using detail::InputArray;

// ---- Who predicts what ----

std::optional<long long> env_number(const char* name, long long low, long long high) {
  const std::string text = env_or(name);
  if (text.empty()) return std::nullopt;
  const auto value = parse_integer(text, low, high);
  if (!value) {
    throw input_error(std::string(name) + "=" + text + ": expected a whole number from " + std::to_string(low) + " to " +
                      std::to_string(high));
  }
  return value;
}

// The task's place in an array job: (index, count), or (0, 1) outside one.
std::pair<long long, long long> array_place() {
  const auto id = env_number("SLURM_ARRAY_TASK_ID", 0, 1 << 30);
  if (!id) return {0, 1};
  const auto count = env_number("SLURM_ARRAY_TASK_COUNT", 1, 1 << 30);
  if (!count) throw input_error("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: Slurm sets both");
  const long long min = env_number("SLURM_ARRAY_TASK_MIN", 0, 1 << 30).value_or(0);
  const long long step = env_number("SLURM_ARRAY_TASK_STEP", 1, 1 << 30).value_or(1);
  const long long index = (*id - min) / step;
  if (*id < min || (*id - min) % step != 0 || index >= *count) {
    throw input_error("SLURM_ARRAY_TASK_ID=" + std::to_string(*id) + " is not one of " + std::to_string(*count) +
                      " tasks from " + std::to_string(min) + " by " + std::to_string(step) +
                      ": batch prediction needs an evenly stepped array (--array=0-N or 0-N:S)");
  }
  return {index, *count};
}

// ---- The model ----

struct ModelFile {
  ModelConfig config;
  fs::path file;
};

bool is_model_folder(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "config.yaml", ec)) return true;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (fs::is_regular_file(entry.path() / "model.pt", ec)) return true;
  }
  return false;
}

// A model file as it is; a model folder or a repository of one model at its newest version,
// with its config.
ModelFile find_model(const fs::path& given) {
  std::error_code ec;
  if (fs::is_regular_file(given, ec)) {
    ModelFile m{{}, given};
    m.config.name = given.stem().string();
    return m;
  }
  fs::path dir = given.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  if (!fs::is_directory(dir, ec)) {
    throw input_error("--model " + given.string() +
                      ": no such file or folder (give a TorchScript file, a model folder REPO/NAME or a repository)");
  }
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  auto models = is_model_folder(dir) ? read_repository(parent, {dir.filename().string()}) : read_repository(dir, {});
  if (models.size() != 1) {
    throw input_error("--model " + given.string() + ": a repository of " + std::to_string(models.size()) +
                      " models (" + join(models, ", ", [](const auto& m) { return m.config.name; }) +
                      "): give one of them, e.g. --model " + (dir / models[0].config.name).string());
  }
  return {models[0].config, models[0].versions.back().file};
}

// Whether rows of `input` are what the model takes; the batch size to run.
std::int64_t check_fit(const ModelConfig& config, const InputArray& input, std::int64_t batch) {
  if (config.inputs.size() != 1) {
    throw input_error("--model: '" + config.name + "' takes " + std::to_string(config.inputs.size()) +
                      " inputs; batch prediction feeds one");
  }
  if (config.outputs.size() != 1) {
    throw input_error("--model: '" + config.name + "' gives " + std::to_string(config.outputs.size()) + " outputs (" +
                      join(config.outputs, ", ", [](const auto& o) { return o.name; }) +
                      "); batch prediction writes one");
  }
  const auto& spec = config.inputs[0];
  const auto& info = input.info();
  if (info.dtype != spec.dtype) {
    throw input_error(input.name() + ": holds " + std::string(to_string(info.dtype)) + ", but the model's input '" +
                      spec.name + "' is " + std::string(datatype_name(spec.dtype)) + ": convert it, e.g. a.astype('" +
                      std::string(to_string(spec.dtype)) + "')");
  }
  const int max = config.max_batch_size;
  if (batch == 0) batch = max > 0 ? max : 64;
  if (max > 0 && batch > max) {
    throw input_error("--batch-size " + std::to_string(batch) + ": the model's config allows batches of at most " +
                      std::to_string(max) + " (max_batch_size)");
  }
  Shape first = info.shape;
  first[0] = std::min<std::int64_t>(batch, info.rows());
  if (auto why = shape_mismatch(spec, first, max)) {
    throw input_error(input.name() + ": rows of shape " + shape_text(Shape(info.shape.begin() + 1, info.shape.end())) +
                      " do not fit the model's input '" + spec.name + "': " + *why);
  }
  return batch;
}

// ---- Shards ----

struct Layout {
  fs::path parts;
  std::int64_t rows = 0;
  std::int64_t shard_rows = 0;
  std::int64_t shards() const { return (rows + shard_rows - 1) / shard_rows; }
  std::int64_t first(std::int64_t shard) const { return shard * shard_rows; }
  std::int64_t count(std::int64_t shard) const { return std::min(shard_rows, rows - first(shard)); }
  fs::path file(std::int64_t shard) const {
    char name[32];
    std::snprintf(name, sizeof name, "shard-%06lld.npy", static_cast<long long>(shard));
    return parts / name;
  }
  fs::path plan() const { return parts / "plan.json"; }
  // Says that the output was written from every shard, and the shards removed.
  fs::path written() const { return parts / "written"; }
  bool done(std::int64_t shard) const {
    std::error_code ec;
    return fs::exists(file(shard), ec);
  }
  std::int64_t done_count() const {
    std::int64_t n = 0;
    for (std::int64_t s = 0; s < shards(); ++s) n += done(s) ? 1 : 0;
    return n;
  }
};

// What makes the shards in OUTPUT.parts/ those of this prediction: a rerun with another
// input, model or shard size would mix rows of two predictions.
json::Value plan_of(const PredictOptions& o, const InputArray& input, const ModelFile& model, const Layout& layout) {
  auto plan = json::Value::object();
  plan.set("input", fs::absolute(o.input).lexically_normal().string());
  plan.set("dataset", input.dataset());
  plan.set("dtype", std::string(to_string(input.info().dtype)));
  plan.set("shape", shape_text(input.info().shape));
  plan.set("model", fs::absolute(model.file).lexically_normal().string());
  plan.set("shard_rows", layout.shard_rows);
  return plan;
}

// Starts OUTPUT.parts/ with the plan, or checks that the plan found there is this one.
// True when the output was written already: by a worker that finished before this one
// started, or in a run this one repeats (a requeued job).
bool open_parts(const PredictOptions& o, const Layout& layout, const json::Value& plan) {
  std::error_code ec;
  if (!fs::is_directory(layout.parts, ec) && fs::exists(o.output, ec)) {
    throw input_error("--output " + o.output.string() +
                      ": exists already; remove it or give another path (a finished prediction is not redone)");
  }
  make_directories(layout.parts.string(), 0755);
  if (!fs::exists(layout.plan(), ec)) {
    write_file_atomically(layout.plan(), json::write(plan, 2) + "\n");
    return false;
  }
  const auto found = json::parse(read_text(layout.plan()), layout.plan().string());
  for (const auto& [key, value] : plan.as_object()) {
    const auto* was = found.find(key);
    if (!was || *was != value) {
      throw input_error(layout.parts.string() + " holds shards of another prediction (its " + key + " was " +
                        (was ? json::write(*was) : "unset") + ", now " + json::write(value) +
                        "): rerun it as it was, or remove " + layout.parts.string() + " to start over");
    }
  }
  if (!fs::exists(layout.written(), ec)) return false;
  if (!fs::exists(o.output, ec)) {
    throw input_error(layout.written().string() + " says " + o.output.string() + " was written, but it is gone: remove " +
                      layout.parts.string() + " to predict again");
  }
  return true;
}

// Runs the model over rows of the input, a batch at a time, and keeps what it gives.
class ShardRunner {
 public:
  ShardRunner(Model& model, InputArray& input, const ModelConfig& config, std::int64_t batch)
      : model_(model), input_(input), input_name_(config.inputs[0].name), batch_(batch) {}

  // Runs the first batch, so that rows that do not fit the model are refused before anything
  // is written.
  void probe() { run_batch(0, std::min(batch_, input_.info().rows())); }

  // Predicts the rows of `shard` and writes them to its file, whole or not at all.
  void run(const Layout& layout, std::int64_t shard, Progress& progress) {
    const std::int64_t first = layout.first(shard), count = layout.count(shard);
    std::string data;
    Shape row;
    DType dtype = DType::float32;
    for (std::int64_t at = 0; at < count; at += batch_) {
      const std::int64_t n = std::min(batch_, count - at);
      Tensor out = run_batch(first + at, n);
      const Shape out_row(out.shape.begin() + 1, out.shape.end());
      if (data.empty()) {
        row = out_row;
        dtype = out.dtype;
      } else if (out_row != row || out.dtype != dtype) {
        throw Error("the model gave rows of " + std::string(to_string(out.dtype)) + " " + shape_text(out_row) +
                    " for rows " + std::to_string(first + at) + ".., after " + std::string(to_string(dtype)) + " " +
                    shape_text(row) + ": batch prediction needs every row's prediction in one shape");
      }
      data.append(reinterpret_cast<const char*>(out.data.data()), out.data.size());
      progress.advance(static_cast<std::uint64_t>(n) * input_.info().row_bytes());
    }
    Shape shape{count};
    shape.insert(shape.end(), row.begin(), row.end());
    AtomicFile file(layout.file(shard));
    file.write(npy_header(dtype, shape));
    file.write(data);
    file.commit();
  }

 private:
  Tensor run_batch(std::int64_t first, std::int64_t n) {
    Tensor in{input_name_, input_.info().dtype, input_.info().shape, {}};
    in.shape[0] = n;
    in.data.resize(static_cast<std::size_t>(n) * input_.info().row_bytes());
    input_.read_rows(first, n, in.data.data());
    std::vector<Tensor> out;
    try {
      out = model_.run({in});
    } catch (const Error& e) {
      // A model that fails on the first rows it sees fails on what it was given: the rows do
      // not fit it. A failure later is the model's.
      if (!ran_) {
        throw input_error(input_.name() + ": rows of shape " + shape_text(Shape(in.shape.begin() + 1, in.shape.end())) +
                          " do not fit the model (a batch of " + shape_text(in.shape) + "): " + e.what());
      }
      throw;
    }
    ran_ = true;
    if (out.size() != 1 || out[0].shape.empty() || out[0].shape[0] != n) {
      throw Error("the model gave " + (out.empty() ? std::string("nothing") : shape_text(out[0].shape)) + " for " +
                  std::to_string(n) + " rows: batch prediction needs one prediction per row, the batch dimension first");
    }
    if (out[0].dtype == DType::bfloat16) {
      throw input_error("the model gives bfloat16, which neither HDF5 nor .npy holds: have it return float32 (.float())");
    }
    return std::move(out[0]);
  }

  Model& model_;
  InputArray& input_;
  std::string input_name_;
  std::int64_t batch_;
  bool ran_ = false;
};

// A testing hook, documented in docs/serve.md: the process kills itself with SIGKILL once it
// has written this many shards, as a node lost mid-run would leave it.
std::optional<long long> kill_after() { return env_number("COHORT_PREDICT_KILL_AFTER_SHARDS", 1, 1LL << 40); }

// Writes the output from every shard, once: the lock keeps two workers that finish together
// from both writing it, and the marker the first leaves tells the other it is done. Only the
// plan and the marker stay in OUTPUT.parts/.
bool join(const PredictOptions& o, const Layout& layout) {
  Fd lock(::open((layout.parts / "join.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) throw Error(system_message("open " + (layout.parts / "join.lock").string(), errno));
  if (::flock(lock.get(), LOCK_EX) != 0) throw Error(system_message("lock " + (layout.parts / "join.lock").string(), errno));
  std::error_code ec;
  if (fs::exists(layout.written(), ec)) return false;
  std::unique_ptr<detail::OutputArray> output;
  ArrayInfo info;
  for (std::int64_t s = 0; s < layout.shards(); ++s) {
    const std::string name = layout.file(s).string();
    const std::string text = read_text(layout.file(s));
    const auto damaged = [&](const std::string& why) {
      return Error(name + ": damaged (" + why + "): remove it and rerun to predict it again");
    };
    NpyHeader h;
    try {
      h = parse_npy_header(text, name);
    } catch (const Error& e) {
      throw damaged(e.what());
    }
    ArrayInfo piece{h.dtype, h.shape};
    if (h.shape.empty() || h.shape[0] != layout.count(s) || text.size() < h.data_offset + piece.rows() * piece.row_bytes()) {
      throw damaged("it does not hold the shard's " + std::to_string(layout.count(s)) + " rows");
    }
    if (!output) {
      info = piece;
      info.shape[0] = layout.rows;
      output = detail::create_output(o.output, o.output_dataset, info);
    } else if (piece.dtype != info.dtype || piece.row_bytes() != info.row_bytes() ||
               !std::equal(h.shape.begin() + 1, h.shape.end(), info.shape.begin() + 1, info.shape.end())) {
      throw Error(name + ": holds rows of another shape or type than shard 0's: remove both and rerun");
    }
    output->append(reinterpret_cast<const std::byte*>(text.data() + h.data_offset), piece.rows());
  }
  output->commit();
  write_file_atomically(layout.written(), o.output.string() + "\n");
  for (const auto& entry : fs::directory_iterator(layout.parts, ec)) {
    if (entry.path() != layout.plan() && entry.path() != layout.written()) fs::remove(entry.path(), ec);
  }
  return true;
}

}  // namespace

Worker find_worker() {
  long long rank = 0, ranks = 1;
  std::string source;
  if (const auto contract = contract_ranks()) {
    std::tie(rank, ranks) = *contract;
    source = "RANK/WORLD_SIZE";
  } else if (const auto procid = env_number("SLURM_PROCID", 0, 1 << 24); procid && !env_or("SLURM_STEP_ID").empty()) {
    // Only in a step: a batch script sees SLURM_PROCID=0 and the job's SLURM_NTASKS too,
    // and a prediction it runs itself is one worker.
    const auto ntasks = env_number("SLURM_NTASKS", 1, 1 << 24);
    if (!ntasks || *procid >= *ntasks) {
      throw input_error("SLURM_PROCID=" + std::to_string(*procid) + " is not below SLURM_NTASKS=" +
                        env_or("SLURM_NTASKS", "(unset)"));
    }
    rank = *procid;
    ranks = *ntasks;
    source = "SLURM_PROCID/SLURM_NTASKS";
  }
  const auto [task, tasks] = array_place();
  if (!env_or("SLURM_ARRAY_TASK_ID").empty()) source += std::string(source.empty() ? "" : ", ") + "SLURM_ARRAY_TASK_*";
  if (tasks * ranks > (1 << 30)) throw input_error("SLURM_ARRAY_TASK_COUNT times the step's tasks is too many workers");
  return {static_cast<int>(task * ranks + rank), static_cast<int>(tasks * ranks), source};
}

PredictReport predict(const PredictOptions& o, const Worker& worker, Runtime& runtime) {
  auto input = detail::open_input(o.input, o.input_dataset);
  if (input->info().rows() == 0) throw input_error(input->name() + ": holds no rows to predict");
  ModelFile model_file = find_model(o.model);
  auto model = runtime.load(model_file.file, model_file.config);
  const std::int64_t batch = check_fit(model_file.config, *input, o.batch_size);
  Layout layout{fs::path(o.output.string() + ".parts"), input->info().rows(), o.shard_rows ? o.shard_rows : 16 * batch};
  ShardRunner runner(*model, *input, model_file.config, batch);
  runner.probe();
  PredictReport report;
  report.shards = layout.shards();
  if (open_parts(o, layout, plan_of(o, *input, model_file, layout))) {
    report.done_after = report.shards;
    report.found_written = true;
    return report;
  }
  std::vector<std::int64_t> mine;
  std::uint64_t bytes = 0;
  for (std::int64_t s = worker.index; s < layout.shards(); s += worker.count) {
    if (layout.done(s)) {
      ++report.done_before;
    } else {
      mine.push_back(s);
      bytes += static_cast<std::uint64_t>(layout.count(s)) * input->info().row_bytes();
    }
  }
  const auto stop = kill_after();
  const auto start = std::chrono::steady_clock::now();
  {
    Progress progress("serve predict", bytes);
    for (auto s : mine) {
      runner.run(layout, s, progress);
      ++report.predicted;
      report.rows_predicted += layout.count(s);
      if (stop && report.predicted >= *stop) ::raise(SIGKILL);
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.done_after = layout.done_count();
  if (report.done_after == report.shards) report.wrote_output = join(o, layout);
  return report;
}

namespace {

options::Help predict_help() {
  return {"serve predict",
          {"--model PATH --input IN --output OUT [options]"},
          "Runs a TorchScript model over every row of IN (an HDF5 dataset, or a .npy file) and\n"
          "writes its predictions to OUT (HDF5, or .npy when OUT ends in .npy), in IN's order.\n"
          "PATH is a model file, a model folder REPO/NAME, or a repository of one model.\n"
          "Rows are cut into shards of --shard-rows; the ranks of a step (SLURM_PROCID of\n"
          "SLURM_NTASKS, or RANK of WORLD_SIZE) and the tasks of an array job share them. Each\n"
          "finished shard is kept in OUT.parts/, so a rerun predicts only what is missing; the\n"
          "worker that finishes the last shard writes OUT and removes the shards (docs/serve.md).",
          {"cohort serve predict --model mlp.pt --input features.h5 --output predictions.h5",
           "srun -n 4 cohort serve predict --model models/mlp --input x.npy --output y.npy --batch-size 256"}};
}

std::optional<PredictOptions> parse_predict(const std::vector<std::string>& args) {
  namespace po = options::po;
  options::Parser parser(predict_help());
  parser.add()
      ("model", po::value<std::string>()->value_name("PATH"), "a TorchScript file, a model folder, or a repository of one model")
      ("input", po::value<std::string>()->value_name("IN"), "the rows: an HDF5 file, or a .npy file")
      ("output", po::value<std::string>()->value_name("OUT"), "the predictions: an HDF5 file, or a .npy file")
      ("input-dataset", po::value<std::string>()->value_name("NAME"), "the dataset of IN (default: its only one)")
      ("output-dataset", po::value<std::string>()->value_name("NAME")->default_value("predictions"), "the dataset of OUT")
      ("batch-size", po::value<std::string>()->value_name("N"), "rows a run of the model (default: max_batch_size, or 64)")
      ("shard-rows", po::value<std::string>()->value_name("N"), "rows a shard, the unit of restart (default: 16 batches)");
  auto p = parser.parse(args);
  if (!p) return std::nullopt;
  for (const char* required : {"model", "input", "output"}) {
    if (!p->has(required)) throw parser.usage_error(std::string("give --") + required);
  }
  PredictOptions o;
  o.model = p->values["model"].as<std::string>();
  o.input = p->values["input"].as<std::string>();
  o.output = p->values["output"].as<std::string>();
  if (p->has("input-dataset")) o.input_dataset = p->values["input-dataset"].as<std::string>();
  o.output_dataset = p->values["output-dataset"].as<std::string>();
  if (o.output_dataset.empty()) throw parser.usage_error("--output-dataset must not be empty");
  const auto number = [&](const char* name, long long high) {
    return options::whole_number(std::string("--") + name, p->values[name].as<std::string>(), 1, high);
  };
  if (p->has("batch-size")) o.batch_size = number("batch-size", 1 << 24);
  if (p->has("shard-rows")) o.shard_rows = number("shard-rows", 1LL << 40);
  if (fs::absolute(o.output).lexically_normal() == fs::absolute(o.input).lexically_normal()) {
    throw parser.usage_error("--output " + o.output.string() + " is the input: give another path");
  }
  return o;
}

}  // namespace

int predict_command(const std::vector<std::string>& args) {
  const auto o = parse_predict(args);
  if (!o) return 0;
  auto runtime = torchscript_runtime();
  if (!runtime) throw Error("this cohort was built without libtorch: install libtorch-dev (scripts/install-deps) and rebuild");
  const Worker worker = find_worker();
  const PredictReport r = predict(*o, worker, *runtime);
  if (r.found_written) {
    std::cout << "cohort: serve predict: " << o->output.string() << " was written already from all " << r.shards
              << " shards; nothing to do\n";
    return 0;
  }
  const double rate = r.seconds > 0 ? static_cast<double>(r.rows_predicted) / r.seconds : 0;
  std::cerr << "cohort: serve predict: worker " << worker.index << " of " << worker.count
            << (worker.source.empty() ? "" : " (" + worker.source + ")") << ": predicted " << r.predicted
            << " shard(s), " << r.rows_predicted << " rows (" << static_cast<long long>(rate) << " rows/s); "
            << r.done_before << " of its shards were done before; " << r.done_after << " of " << r.shards
            << " shards done\n";
  if (r.wrote_output) {
    std::cout << "cohort: serve predict: wrote " << o->output.string() << "\n";
  } else if (r.done_after < r.shards) {
    std::cout << "cohort: serve predict: " << r.shards - r.done_after << " shard(s) left to the other workers; "
              << "the one that finishes the last writes " << o->output.string() << "\n";
  } else {
    std::cout << "cohort: serve predict: another worker wrote " << o->output.string() << "\n";
  }
  return 0;
}

}  // namespace cohort::serve
