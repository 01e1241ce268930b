#include "serve/protocol.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

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

// The bytes after the JSON, handed out input by input.
struct BinaryCursor {
  std::string_view data;
  std::size_t at = 0;
};

// An input's binary_data_size, when it gives one.
std::optional<std::int64_t> binary_size(const json::Value& input, const std::string& where) {
  const json::Value* params = input.find("parameters");
  if (!params) return std::nullopt;
  if (!params->is_object()) throw bad(where + ": \"parameters\" must be an object");
  const json::Value* size = params->find("binary_data_size");
  if (!size) return std::nullopt;
  if (!size->is_int() || size->as_int() < 0) throw bad(where + ": binary_data_size must be a byte count");
  return size->as_int();
}

void read_binary(Tensor& t, std::int64_t size, BinaryCursor& binary, const std::string& where) {
  const auto expected = element_count(t.shape) * static_cast<std::int64_t>(size_of(t.dtype));
  if (size != expected) {
    throw bad(where + ": binary_data_size " + std::to_string(size) + " is not the " + std::to_string(expected) +
              " bytes of shape " + shape_text(t.shape));
  }
  if (binary.data.size() - binary.at < static_cast<std::size_t>(size)) {
    throw bad(where + ": the body ends " + std::to_string(size - static_cast<std::int64_t>(binary.data.size() - binary.at)) +
              " byte(s) short of its binary data");
  }
  const auto* from = reinterpret_cast<const std::byte*>(binary.data.data() + binary.at);
  t.data.assign(from, from + size);
  binary.at += static_cast<std::size_t>(size);
  if (t.dtype == DType::bool8 && std::any_of(t.data.begin(), t.data.end(), [](std::byte b) { return b > std::byte{1}; })) {
    throw bad(where + ": BOOL bytes must be 0 or 1");
  }
}

Tensor read_input(const json::Value& input, const TensorSpec& spec, int max_batch, BinaryCursor& binary) {
  const std::string where = "input '" + spec.name + "'";
  Tensor t{spec.name, spec.dtype, read_shape(input, where), {}};
  const json::Value& type = member(input, "datatype", where);
  if (!type.is_string()) throw bad(where + ": \"datatype\" must be a string such as \"FP32\"");
  if (type.as_string() != datatype_name(spec.dtype)) {
    throw bad(where + ": datatype " + type.as_string() + " is not the model's " + std::string(datatype_name(spec.dtype)));
  }
  if (auto why = shape_mismatch(spec, t.shape, max_batch)) throw bad(where + ": " + *why);
  if (auto size = binary_size(input, where)) {
    if (input.find("data")) throw bad(where + ": gives both \"data\" and binary_data_size; give one");
    read_binary(t, *size, binary, where);
    return t;
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

// The outputs asked for, and which of them as binary data.
void read_requested_outputs(const json::Value& body, const ModelConfig& config, InferRequest& r) {
  const json::Value* outputs = body.find("outputs");
  if (!outputs) return;
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
      if (!b.is_bool()) throw bad("output '" + name + "': binary_data must be true or false");
      if (b.as_bool()) r.binary_outputs.push_back(name);
    }
    r.outputs.push_back(name);
  }
}

bool binary_data_output(const json::Value& body) {
  const json::Value* params = body.find("parameters");
  if (!params || !params->is_object() || !params->find("binary_data_output")) return false;
  const json::Value& b = params->at("binary_data_output");
  if (!b.is_bool()) throw bad("parameters.binary_data_output must be true or false");
  return b.as_bool();
}

// {name, datatype, shape}: what a tensor or a signature's entry says of itself.
json::Value describe(const std::string& name, DType dtype, const Shape& shape) {
  json::Value dims = json::Value::array();
  for (auto d : shape) dims.push(d);
  json::Value out = json::Value::object();
  out.set("name", name);
  out.set("datatype", std::string(datatype_name(dtype)));
  out.set("shape", std::move(dims));
  return out;
}

json::Value tensor_header(const Tensor& t) { return describe(t.name, t.dtype, t.shape); }

json::Value tensor_json(const Tensor& t) {
  json::Array data;
  const std::size_t width = size_of(t.dtype);
  data.reserve(t.data.size() / width);
  for (std::size_t at = 0; at + width <= t.data.size(); at += width) data.push_back(element_json(t.dtype, &t.data[at]));
  json::Value out = tensor_header(t);
  out.set("data", json::Value(std::move(data)));
  return out;
}

json::Value binary_tensor_json(const Tensor& t, std::string& binary) {
  json::Value params = json::Value::object();
  params.set("binary_data_size", static_cast<unsigned long long>(t.data.size()));
  json::Value out = tensor_header(t);
  out.set("parameters", std::move(params));
  binary.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  return out;
}

json::Value spec_json(const TensorSpec& spec, int max_batch) {
  Shape shape;
  if (max_batch > 0 || spec.any_shape) shape.push_back(-1);
  if (!spec.any_shape) shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  return describe(spec.name, spec.dtype, shape);
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

InferRequest read_infer_request(const json::Value& body, const ModelConfig& config, std::string_view binary) {
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
  BinaryCursor cursor{binary};
  for (std::size_t i = 0; i < given.size(); ++i) {
    if (!given[i]) throw bad("input '" + config.inputs[i].name + "' is missing");
    r.inputs.push_back(read_input(*given[i], config.inputs[i], config.max_batch_size, cursor));
  }
  if (cursor.at != binary.size()) {
    throw bad("the body holds " + std::to_string(binary.size() - cursor.at) +
              " byte(s) of binary data beyond what the inputs' binary_data_size take");
  }
  read_requested_outputs(body, config, r);
  r.all_binary = binary_data_output(body);
  return r;
}

json::Value infer_response(const std::string& model, std::int64_t version, const InferRequest& request,
                           const std::vector<Tensor>& outputs, std::string* binary) {
  json::Value out = json::Value::object();
  out.set("model_name", model);
  out.set("model_version", std::to_string(version));
  if (!request.id.is_null()) out.set("id", request.id);
  json::Value list = json::Value::array();
  for (const auto& t : outputs) {
    const auto& asked = request.outputs;
    if (!asked.empty() && std::find(asked.begin(), asked.end(), t.name) == asked.end()) continue;
    const auto& as_binary = request.binary_outputs;
    if (binary && (request.all_binary || std::find(as_binary.begin(), as_binary.end(), t.name) != as_binary.end())) {
      list.push(binary_tensor_json(t, *binary));
    } else {
      list.push(tensor_json(t));
    }
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
