#include "serve/protocol.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace cohort::serve {
namespace {

HttpError bad(const std::string& message) { return HttpError(400, message); }

template <class T>
void put(std::vector<std::byte>& out, T value) {
  const auto at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &value, sizeof(T));
}

template <class T>
T get(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

template <class T>
void put_integer(std::vector<std::byte>& out, const json::Value& v, const std::string& where) {
  if (!v.is_number()) throw bad(where + ": expected an integer, got " + v.type_name());
  std::int64_t i = 0;
  try {
    i = v.as_int();
  } catch (const Error&) {
    throw bad(where + ": expected an integer, got " + json::write(v));
  }
  if constexpr (std::is_unsigned_v<T>) {
    if (i < 0 || static_cast<std::uint64_t>(i) > std::numeric_limits<T>::max()) {
      throw bad(where + ": " + std::to_string(i) + " is out of range for the datatype");
    }
  } else if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
    throw bad(where + ": " + std::to_string(i) + " is out of range for the datatype");
  }
  put(out, static_cast<T>(i));
}

double number(const json::Value& v, const std::string& where) {
  if (!v.is_number()) throw bad(where + ": expected a number, got " + v.type_name());
  return v.as_double();
}

void put_element(std::vector<std::byte>& out, DType dtype, const json::Value& v, const std::string& where) {
  switch (dtype) {
    case DType::bool8:
      if (!v.is_bool()) throw bad(where + ": expected true or false, got " + v.type_name());
      put(out, static_cast<std::uint8_t>(v.as_bool()));
      return;
    case DType::int8: return put_integer<std::int8_t>(out, v, where);
    case DType::int16: return put_integer<std::int16_t>(out, v, where);
    case DType::int32: return put_integer<std::int32_t>(out, v, where);
    case DType::int64: return put_integer<std::int64_t>(out, v, where);
    case DType::uint8: return put_integer<std::uint8_t>(out, v, where);
    case DType::uint16: return put_integer<std::uint16_t>(out, v, where);
    case DType::uint32: return put_integer<std::uint32_t>(out, v, where);
    case DType::uint64: return put_integer<std::uint64_t>(out, v, where);
    case DType::float16: return put(out, to_half(static_cast<float>(number(v, where))));
    case DType::bfloat16: return put(out, to_bfloat16(static_cast<float>(number(v, where))));
    case DType::float32: return put(out, static_cast<float>(number(v, where)));
    case DType::float64: return put(out, number(v, where));
  }
}

// The elements of flat or nested `data`, in row-major order.
void flatten(const json::Value& data, std::vector<const json::Value*>& out, int depth, const std::string& where) {
  if (!data.is_array()) {
    out.push_back(&data);
    return;
  }
  if (depth > 64) throw bad(where + ": data is nested deeper than any shape");
  for (const auto& e : data.as_array()) flatten(e, out, depth + 1, where);
}

Shape read_shape(const json::Value& input, const std::string& where) {
  const json::Value* shape = input.find("shape");
  if (!shape || !shape->is_array()) throw bad(where + ": needs \"shape\", a list of dimensions");
  Shape out;
  for (const auto& d : shape->as_array()) {
    if (!d.is_int() || d.as_int() < 0) throw bad(where + ": shape " + json::write(*shape) + " is not a list of sizes");
    out.push_back(d.as_int());
  }
  try {
    element_count(out);
  } catch (const Error& e) {
    throw bad(where + ": " + e.what());
  }
  return out;
}

const json::Value& member(const json::Value& object, const char* key, const std::string& where) {
  const json::Value* v = object.find(key);
  if (!v) throw bad(where + ": needs \"" + key + "\"");
  return *v;
}

Tensor read_input(const json::Value& input, const TensorSpec& spec, int max_batch) {
  const std::string where = "input '" + spec.name + "'";
  Tensor t{spec.name, spec.dtype, read_shape(input, where), {}};
  const json::Value& type = member(input, "datatype", where);
  if (!type.is_string()) throw bad(where + ": \"datatype\" must be a string such as \"FP32\"");
  if (type.as_string() != datatype_name(spec.dtype)) {
    throw bad(where + ": datatype " + type.as_string() + " is not the model's " + std::string(datatype_name(spec.dtype)));
  }
  if (auto why = shape_mismatch(spec, t.shape, max_batch)) throw bad(where + ": " + *why);
  if (input.find("parameters") && input.at("parameters").find("binary_data_size")) {
    throw bad(where + ": binary tensor data is not accepted; send \"data\" as JSON");
  }
  std::vector<const json::Value*> elements;
  flatten(member(input, "data", where), elements, 0, where);
  const auto expected = element_count(t.shape);
  if (static_cast<std::int64_t>(elements.size()) != expected) {
    throw bad(where + ": data has " + std::to_string(elements.size()) + " element(s); shape " + shape_text(t.shape) +
              " needs " + std::to_string(expected));
  }
  t.data.reserve(elements.size() * size_of(t.dtype));
  for (std::size_t i = 0; i < elements.size(); ++i) {
    put_element(t.data, t.dtype, *elements[i], where + ": data[" + std::to_string(i) + "]");
  }
  return t;
}

std::vector<std::string> read_requested_outputs(const json::Value& body, const ModelConfig& config) {
  std::vector<std::string> names;
  const json::Value* outputs = body.find("outputs");
  if (!outputs) return names;
  if (!outputs->is_array()) throw bad("\"outputs\" must be a list of {\"name\": …}");
  for (const auto& o : outputs->as_array()) {
    if (!o.is_object() || !o.find("name") || !o.at("name").is_string()) {
      throw bad("\"outputs\": each must be an object with a \"name\"");
    }
    const std::string& name = o.at("name").as_string();
    if (std::none_of(config.outputs.begin(), config.outputs.end(), [&](const auto& s) { return s.name == name; })) {
      throw bad("output '" + name + "': the model has no such output");
    }
    const json::Value* params = o.find("parameters");
    if (params && params->is_object() && params->find("binary_data")) {
      const json::Value& b = params->at("binary_data");
      if (!b.is_bool() || b.as_bool()) throw bad("output '" + name + "': binary tensor data is not offered; ask for JSON");
    }
    names.push_back(name);
  }
  return names;
}

json::Value tensor_json(const Tensor& t) {
  json::Value shape = json::Value::array();
  for (auto d : t.shape) shape.push(d);
  json::Array data;
  const std::size_t width = size_of(t.dtype);
  data.reserve(t.data.size() / width);
  for (std::size_t at = 0; at + width <= t.data.size(); at += width) data.push_back(element_json(t.dtype, &t.data[at]));
  json::Value out = json::Value::object();
  out.set("name", t.name);
  out.set("datatype", std::string(datatype_name(t.dtype)));
  out.set("shape", std::move(shape));
  out.set("data", json::Value(std::move(data)));
  return out;
}

json::Value spec_json(const TensorSpec& spec, int max_batch) {
  json::Value shape = json::Value::array();
  if (max_batch > 0 || spec.any_shape) shape.push(-1);
  if (!spec.any_shape) {
    for (auto d : spec.dims) shape.push(d);
  }
  json::Value out = json::Value::object();
  out.set("name", spec.name);
  out.set("datatype", std::string(datatype_name(spec.dtype)));
  out.set("shape", std::move(shape));
  return out;
}

}  // namespace

json::Value element_json(DType dtype, const std::byte* at) {
  switch (dtype) {
    case DType::bool8: return json::Value(get<std::uint8_t>(at) != 0);
    case DType::int8: return json::Value(static_cast<int>(get<std::int8_t>(at)));
    case DType::int16: return json::Value(static_cast<int>(get<std::int16_t>(at)));
    case DType::int32: return json::Value(get<std::int32_t>(at));
    case DType::int64: return json::Value(static_cast<long long>(get<std::int64_t>(at)));
    case DType::uint8: return json::Value(static_cast<int>(get<std::uint8_t>(at)));
    case DType::uint16: return json::Value(static_cast<int>(get<std::uint16_t>(at)));
    case DType::uint32: return json::Value(static_cast<long long>(get<std::uint32_t>(at)));
    case DType::uint64: return json::Value(static_cast<unsigned long long>(get<std::uint64_t>(at)));
    default: break;
  }
  double d = dtype == DType::float16    ? from_half(get<std::uint16_t>(at))
             : dtype == DType::bfloat16 ? from_bfloat16(get<std::uint16_t>(at))
             : dtype == DType::float32  ? get<float>(at)
                                        : get<double>(at);
  if (!std::isfinite(d)) throw HttpError(500, "the model gave a non-finite value, which JSON cannot carry");
  return json::Value(d);
}

InferRequest read_infer_request(const json::Value& body, const ModelConfig& config) {
  if (!body.is_object()) throw bad("the request must be a JSON object with \"inputs\"");
  InferRequest r;
  if (const json::Value* id = body.find("id")) {
    if (!id->is_string()) throw bad("\"id\" must be a string");
    r.id = *id;
  }
  const json::Value& inputs = member(body, "inputs", "the request");
  if (!inputs.is_array()) throw bad("\"inputs\" must be a list of tensors");
  std::vector<const json::Value*> given(config.inputs.size(), nullptr);
  for (const auto& in : inputs.as_array()) {
    if (!in.is_object() || !in.find("name") || !in.at("name").is_string()) {
      throw bad("\"inputs\": each must be an object with a \"name\"");
    }
    const std::string& name = in.at("name").as_string();
    auto it = std::find_if(config.inputs.begin(), config.inputs.end(), [&](const auto& s) { return s.name == name; });
    if (it == config.inputs.end()) throw bad("input '" + name + "': the model has no such input");
    auto& slot = given[it - config.inputs.begin()];
    if (slot) throw bad("input '" + name + "' is given twice");
    slot = &in;
  }
  for (std::size_t i = 0; i < given.size(); ++i) {
    if (!given[i]) throw bad("input '" + config.inputs[i].name + "' is missing");
    r.inputs.push_back(read_input(*given[i], config.inputs[i], config.max_batch_size));
  }
  r.outputs = read_requested_outputs(body, config);
  return r;
}

json::Value infer_response(const std::string& model, std::int64_t version, const InferRequest& request,
                           const std::vector<Tensor>& outputs) {
  json::Value out = json::Value::object();
  out.set("model_name", model);
  out.set("model_version", std::to_string(version));
  if (!request.id.is_null()) out.set("id", request.id);
  json::Value list = json::Value::array();
  for (const auto& t : outputs) {
    const auto& asked = request.outputs;
    if (asked.empty() || std::find(asked.begin(), asked.end(), t.name) != asked.end()) list.push(tensor_json(t));
  }
  out.set("outputs", std::move(list));
  return out;
}

json::Value model_metadata(const ModelConfig& config, const std::vector<std::int64_t>& versions,
                           const std::string& platform) {
  json::Value out = json::Value::object();
  out.set("name", config.name);
  json::Value list = json::Value::array();
  for (auto v : versions) list.push(std::to_string(v));
  out.set("versions", std::move(list));
  out.set("platform", platform);
  json::Value inputs = json::Value::array(), outputs = json::Value::array();
  for (const auto& s : config.inputs) inputs.push(spec_json(s, config.max_batch_size));
  for (const auto& s : config.outputs) outputs.push(spec_json(s, config.max_batch_size));
  out.set("inputs", std::move(inputs));
  out.set("outputs", std::move(outputs));
  return out;
}

}  // namespace cohort::serve
