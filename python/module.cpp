// python/module.cpp — cohort._cohort, the C++ libraries as the cohort package calls them.
//
// Thin on purpose: the pure-Python modules (cohort/*.py) turn framework objects into what
// these functions take (tensor descriptions with raw addresses, JSON text), and everything a
// checkpoint, a contract or a trial means is decided here by the C++ code it calls.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "collectives/communicator.hpp"
#include "common/dtype.hpp"
#include "common/error.hpp"
#include "common/json.hpp"
#include "launcher/contract.hpp"
#include "launcher/heartbeat.hpp"
#include "tuner/journal.hpp"
#include "tuner/metrics.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
namespace ckpt = cohort::checkpoint;

namespace {

// A tensor as checkpoint.py describes it: (name, dtype, shape, sharding, address).
using TensorSpec = std::tuple<std::string, std::string, std::vector<std::uint64_t>, std::string, std::uintptr_t>;

// Every element of a zero-size tensor is written from and read into nowhere, but the
// checkpointer, like any C++ API, wants a pointer it may hold: frameworks give 0 for them.
std::byte empty_tensor_byte;

ckpt::Sharding parse_sharding(const std::string& name, const std::string& sharding) {
  if (sharding == "replicated") return ckpt::Sharding::replicated;
  if (sharding == "rows") return ckpt::Sharding::rows;
  throw cohort::input_error("tensor '" + name + "': sharding '" + sharding + "' (expected replicated or rows)");
}

cohort::DType parse_tensor_dtype(const std::string& name, const std::string& dtype) {
  try {
    return cohort::parse_dtype(dtype, ckpt::stored_dtypes());
  } catch (const cohort::Error& e) {
    throw cohort::input_error("tensor '" + name + "': " + e.what());
  }
}

template <class Slot, class Pointer>
std::vector<Slot> to_slots(const std::vector<TensorSpec>& specs) {
  std::vector<Slot> out;
  out.reserve(specs.size());
  for (const auto& [name, dtype, shape, sharding, address] : specs) {
    Slot s;
    s.name = name;
    s.dtype = parse_tensor_dtype(name, dtype);
    s.shape = shape;
    s.sharding = parse_sharding(name, sharding);
    s.data = address ? reinterpret_cast<Pointer>(address) : static_cast<Pointer>(&empty_tensor_byte);
    out.push_back(std::move(s));
  }
  return out;
}

py::dict to_dict(const ckpt::SaveResult& r) {
  return py::dict("step"_a = r.step, "path"_a = r.path, "bytes"_a = r.bytes, "pruned"_a = r.pruned);
}

py::dict to_dict(const ckpt::LoadResult& r) {
  py::list skipped;
  for (const auto& s : r.skipped) skipped.append(py::make_tuple(s.step, s.reason));
  return py::dict("step"_a = r.step, "path"_a = r.path, "saved_world_size"_a = r.saved_world_size,
                  "time"_a = r.time, "attributes"_a = cohort::json::write(r.metadata.attributes),
                  "skipped"_a = skipped);
}

// The ranks a checkpoint is collective over. MPI initialised by the program (mpi4py) or
// started by an MPI launcher: the communicator's own choice of ranks, which orders them by
// RANK and refuses a WORLD_SIZE that MPI does not see. Otherwise MPI stays uninitialised
// and the checkpointer takes the launch contract's ranks (torchrun, cohort launch), or
// works alone.
class Ranks {
 public:
  MPI_Comm comm() {
    if (!decided_) {
      if (cohort::collectives::mpi_launched()) {
        cohort::collectives::CommunicatorOptions options;
        options.bootstrap = "mpi";
        communicator_.emplace(cohort::collectives::Communicator::from_environment(options));
        comm_ = communicator_->mpi_comm();
      }
      decided_ = true;
    }
    return comm_;
  }

 private:
  bool decided_ = false;
  MPI_Comm comm_ = MPI_COMM_WORLD;  // the checkpointer works alone while MPI is not initialised
  std::optional<cohort::collectives::Communicator> communicator_;
};

Ranks& ranks() {
  static Ranks instance;
  return instance;
}


// What save(async_=True) hands back once the tensors are staged.
class SaveHandle {
 public:
  SaveHandle(std::future<ckpt::SaveResult> future, py::object owner)
      : future_(std::move(future)), owner_(std::move(owner)) {}

  bool done() const {
    if (result_ || error_) return true;
    return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  py::dict wait() {
    if (!result_ && !error_) {
      py::gil_scoped_release unlocked;
      try {
        result_ = future_.get();
      } catch (...) {
        error_ = std::current_exception();
      }
    }
    if (error_) std::rethrow_exception(error_);
    return to_dict(*result_);
  }

 private:
  std::future<ckpt::SaveResult> future_;
  py::object owner_;  // keeps the checkpointer, and its background thread, alive
  std::optional<ckpt::SaveResult> result_;
  std::exception_ptr error_;
};

class Checkpointer {
 public:
  Checkpointer(std::filesystem::path dir, std::int64_t keep_last, std::int64_t keep_every) {
    ckpt::Options options;
    options.retention = {keep_last, keep_every};
    MPI_Comm comm = ranks().comm();
    py::gil_scoped_release unlocked;
    impl_ = std::make_unique<ckpt::Checkpointer>(std::move(dir), comm, std::move(options));
  }

  ~Checkpointer() {
    py::gil_scoped_release unlocked;
    impl_.reset();
  }

  int rank() const { return impl_->rank(); }
  int world_size() const { return impl_->world_size(); }

  py::dict save(std::int64_t step, const std::vector<TensorSpec>& tensors, const std::string& attributes) {
    ckpt::State state = make_state(tensors, attributes);
    py::gil_scoped_release unlocked;
    return with_gil(impl_->save(step, state));
  }

  SaveHandle save_async(py::object self, std::int64_t step, const std::vector<TensorSpec>& tensors,
                        const std::string& attributes) {
    ckpt::State state = make_state(tensors, attributes);
    std::future<ckpt::SaveResult> future;
    {
      py::gil_scoped_release unlocked;
      future = impl_->save_async(step, state);
    }
    return SaveHandle(std::move(future), std::move(self));
  }

  std::optional<py::dict> load(std::optional<std::int64_t> step, const std::vector<TensorSpec>& tensors) {
    auto slots = to_slots<ckpt::TensorSlot, void*>(tensors);
    std::optional<ckpt::LoadResult> result;
    {
      py::gil_scoped_release unlocked;
      if (step) result = impl_->load(*step, slots);
      else result = impl_->load_latest(slots);
    }
    if (!result) return std::nullopt;
    return to_dict(*result);
  }

  void wait() {
    py::gil_scoped_release unlocked;
    impl_->wait();
  }

  std::vector<std::int64_t> steps() const { return impl_->steps(); }

 private:
  static ckpt::State make_state(const std::vector<TensorSpec>& tensors, const std::string& attributes) {
    ckpt::State state;
    state.tensors = to_slots<ckpt::Tensor, const void*>(tensors);
    state.metadata.attributes = cohort::json::parse(attributes, "checkpoint metadata");
    return state;
  }

  static py::dict with_gil(const ckpt::SaveResult& r) {
    py::gil_scoped_acquire locked;
    return to_dict(r);
  }

  std::unique_ptr<ckpt::Checkpointer> impl_;
};

// Committed steps in `dir`, oldest first; none when there is no such directory yet.
std::vector<std::int64_t> committed_steps(const std::filesystem::path& dir) {
  std::vector<std::int64_t> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : ckpt::list(dir)) out.push_back(e.step);
  return out;
}

// What a checkpoint's manifest records: its attributes as JSON text, and each tensor's
// dtype, whole shape and sharding by name.
py::tuple checkpoint_contents(const std::filesystem::path& dir, std::int64_t step) {
  const auto manifest = ckpt::read_manifest(ckpt::checkpoint_path(dir, step));
  py::dict tensors;
  for (const auto& t : manifest.tensors) {
    tensors[py::str(t.name)] = py::make_tuple(cohort::to_string(t.dtype), t.shape, ckpt::to_string(t.sharding));
  }
  return py::make_tuple(cohort::json::write(manifest.metadata.attributes), tensors);
}

py::dict contract() {
  const auto c = cohort::launcher::contract_from_environment(cohort::launcher::current_environment());
  return py::dict("rank"_a = c.rank, "world_size"_a = c.world_size, "local_rank"_a = c.local_rank,
                  "local_world_size"_a = c.local_world_size, "group_rank"_a = c.group_rank,
                  "master_addr"_a = c.master_addr, "master_port"_a = c.master_port,
                  "restart_count"_a = c.restart_count, "heartbeat_file"_a = c.heartbeat_file,
                  "checkpoint_request"_a = c.checkpoint_request);
}

// The trial's parameters as the sweep's journal recorded them when the trial was claimed.
py::dict trial_parameters(const std::filesystem::path& sweep_dir, int trial) {
  const auto state = cohort::tuner::Journal(sweep_dir).read();
  const auto* t = state.find(trial);
  if (!t) {
    throw cohort::input_error(sweep_dir.string() + ": the journal has no trial " + std::to_string(trial) +
                              " (COHORT_TRIAL_ID)");
  }
  py::dict d;
  for (const auto& [name, value] : t->parameters) d[py::str(name)] = value;
  return d;
}

py::tuple parse_metric_line(const std::string& line) {
  const auto m = cohort::tuner::parse_metric_line(line);
  py::list values;
  for (const auto& [name, value] : m.values) values.append(py::make_tuple(name, value));
  return py::make_tuple(values, m.step ? py::cast(*m.step) : py::none());
}

}  // namespace

PYBIND11_MODULE(_cohort, m) {
  m.doc() = "cohort's C++ libraries, as the cohort package calls them";

  static py::exception<cohort::Error> error(m, "Error");
  static py::exception<cohort::Error> input(m, "InputError", error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cohort::Error& e) {
      if (e.kind() == cohort::ErrorKind::input) input(e.what());
      else error(e.what());
    }
  });

  py::class_<SaveHandle>(m, "SaveHandle")
      .def("done", &SaveHandle::done)
      .def("wait", &SaveHandle::wait);

  py::class_<Checkpointer>(m, "Checkpointer")
      .def(py::init<std::filesystem::path, std::int64_t, std::int64_t>(), py::arg("dir"), py::arg("keep_last") = 0,
           py::arg("keep_every") = 0)
      .def_property_readonly("rank", &Checkpointer::rank)
      .def_property_readonly("world_size", &Checkpointer::world_size)
      .def("save", &Checkpointer::save)
      .def("save_async",
           [](py::object self, std::int64_t step, const std::vector<TensorSpec>& tensors, const std::string& attributes) {
             return self.cast<Checkpointer&>().save_async(self, step, tensors, attributes);
           })
      .def("load", &Checkpointer::load)
      .def("wait", &Checkpointer::wait)
      .def("steps", &Checkpointer::steps);

  m.def("committed_steps", &committed_steps);
  m.def("checkpoint_contents", &checkpoint_contents);
  m.def("contract", &contract);
  m.def("heartbeat", &cohort::launcher::heartbeat);
  m.def("trial_parameters", &trial_parameters);
  m.def("parse_metric_line", &parse_metric_line);

  py::class_<ckpt::PreemptionWatch>(m, "PreemptionWatch")
      .def(py::init([] { return std::make_unique<ckpt::PreemptionWatch>(ranks().comm()); }))
      .def("requested", &ckpt::PreemptionWatch::requested, py::call_guard<py::gil_scoped_release>())
      .def("acknowledge", &ckpt::PreemptionWatch::acknowledge);
}
