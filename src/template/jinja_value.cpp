// Runtime values of the Jinja interpreter: construction, truthiness, the reference's string and
// JSON forms (toString, toJSON), JavaScript equality, ordering, and conversion from JSON.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "template/jinja_internal.h"

namespace slm::jinja::detail {

Value Value::null() {
  Value v;
  v.kind = Kind::Null;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(double x) {
  Value v;
  v.kind = Kind::Int;
  v.num = x;
  return v;
}
Value Value::floating(double x) {
  Value v;
  v.kind = Kind::Float;
  v.num = x;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind = Kind::String;
  v.str = std::move(s);
  return v;
}
bool Value::is_plain_object() const { return kind == Kind::Object && obj->sub != ObjKind::Namespace; }
bool Value::is_namespace() const { return kind == Kind::Object && obj->sub == ObjKind::Namespace; }
bool Value::is_kwargs() const { return kind == Kind::Object && obj->sub == ObjKind::Kwargs; }

static int child_depth(const Value& v) {
  if (v.kind == Kind::Array) return v.arr->depth;
  if (v.kind == Kind::Object) return v.obj->depth;
  return 0;
}

Value make_array(std::vector<Value> items, bool tuple) {
  int depth = 0;
  for (const Value& v : items) depth = std::max(depth, child_depth(v));
  if (depth + 1 > k_max_value_depth) fail("values are nested too deeply");
  Value v;
  v.kind = Kind::Array;
  v.arr = std::make_shared<ArrayData>();
  v.arr->items = std::move(items);
  v.arr->tuple = tuple;
  v.arr->depth = depth + 1;
  return v;
}

Value make_object(std::vector<std::pair<std::string, Value>> entries, ObjKind sub) {
  Value v;
  v.kind = Kind::Object;
  v.obj = std::make_shared<ObjectData>();
  v.obj->sub = sub;
  for (auto& [k, val] : entries) v.obj->set(k, std::move(val));
  return v;
}

Value make_function(std::string name, NativeFn fn) {
  Value v;
  v.kind = Kind::Function;
  v.fn = std::make_shared<FunctionData>();
  v.fn->name = std::move(name);
  v.fn->fn = std::move(fn);
  return v;
}

const Value* ObjectData::get(const std::string& key) const {
  auto it = index.find(key);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void ObjectData::set(const std::string& key, Value v) {
  int d = child_depth(v) + 1;
  // Namespaces are mutable and may even contain themselves; their depth is only a lower
  // bound, and every recursion over values carries its own depth check as well.
  if (d > k_max_value_depth) fail("values are nested too deeply");
  depth = std::max(depth, d);
  auto it = index.find(key);
  if (it != index.end()) {
    entries[it->second].second = std::move(v);
    return;
  }
  index.emplace(key, entries.size());
  entries.emplace_back(key, std::move(v));
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return "UndefinedValue";
    case Kind::Null: return "NullValue";
    case Kind::Bool: return "BooleanValue";
    case Kind::Int: return "IntegerValue";
    case Kind::Float: return "FloatValue";
    case Kind::String: return "StringValue";
    case Kind::Array: return v.arr->tuple ? "TupleValue" : "ArrayValue";
    case Kind::Object:
      return v.obj->sub == ObjKind::Namespace ? "NamespaceValue"
             : v.obj->sub == ObjKind::Kwargs  ? "KeywordArgumentsValue"
                                              : "ObjectValue";
    case Kind::Function: return "FunctionValue";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::Null: return false;
    case Kind::Bool: return v.b;
    case Kind::Int:
    case Kind::Float: return v.num != 0 && !std::isnan(v.num);
    case Kind::String: return !v.str.empty();
    case Kind::Array: return !v.arr->items.empty();
    case Kind::Object: return v.obj->sub == ObjKind::Namespace || !v.obj->entries.empty();
    case Kind::Function: return true;
  }
  return false;
}

static std::string float_to_string(double x) {
  if (x == 0 && std::signbit(x)) return "-0.0";
  if (std::isfinite(x) && std::fmod(x, 1.0) == 0) {
    if (std::fabs(x) >= 1e21) return js_number_to_string(x);  // toFixed falls back to toString
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.1f", x);
    return buf;
  }
  return js_number_to_string(x);
}

static void check_budget(const std::string& s, int64_t budget) {
  if (static_cast<int64_t>(s.size()) > budget) fail("output exceeds the size limit");
}

std::string to_output_string(const Value& v, int64_t budget) {
  switch (v.kind) {
    case Kind::Undefined: return "undefined";
    case Kind::Null: return "null";
    case Kind::Bool: return v.b ? "true" : "false";
    case Kind::Int: return js_number_to_string(v.num);
    case Kind::Float: return float_to_string(v.num);
    case Kind::String: return v.str;
    case Kind::Array:
    case Kind::Object: return to_json(v, JsonOptions{}, false, budget);
    case Kind::Function: return "function () { [native code] }";
  }
  return "";
}

std::string js_value_string(const Value& v, int64_t budget) {
  switch (v.kind) {
    case Kind::Float: return js_number_to_string(v.num);
    case Kind::Array: {  // Array.prototype.toString: the elements' toString() joined by ","
      std::string out;
      for (size_t i = 0; i < v.arr->items.size(); ++i) {
        if (i) out += ',';
        out += to_output_string(v.arr->items[i], budget - static_cast<int64_t>(out.size()));
        check_budget(out, budget);
      }
      return out;
    }
    case Kind::Object: return "[object Map]";
    default: return to_output_string(v, budget);
  }
}

// ---- toJSON

static void hex4(std::string& out, uint32_t u) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\u%04x", u & 0xFFFF);
  out += buf;
}

static void json_quote(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    if (cp < 0x20) {
      hex4(out, cp);
    } else if (ensure_ascii && cp >= 0x7F) {
      if (cp >= 0x10000) {
        hex4(out, 0xD800 + ((cp - 0x10000) >> 10));
        hex4(out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        hex4(out, cp);
      }
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
}

// An approximation of String.prototype.localeCompare (ICU root collation) for sort_keys:
// case-insensitive first, then lower case before upper case.
static bool locale_less(const std::string& a, const std::string& b) {
  int c = compare_utf16(js_to_lower(a), js_to_lower(b));
  if (c != 0) return c < 0;
  return compare_utf16(b, a) < 0;
}

namespace {
struct JsonWriter {
  const JsonOptions& o;
  bool undefined_to_null;
  int64_t budget;
  std::string item_sep, key_sep, indent_str;
  std::string out;

  void check() {
    if (static_cast<int64_t>(out.size()) > budget) fail("output exceeds the size limit");
  }
  void padding(int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) {
      out += indent_str;
      check();
    }
  }
  void write(const Value& v, int depth) {
    if (depth > k_max_value_depth) fail("tojson: value nested too deeply");
    switch (v.kind) {
      case Kind::Null: out += "null"; break;
      case Kind::Undefined: out += undefined_to_null ? "null" : "undefined"; break;
      case Kind::Int:
      case Kind::Float: out += std::isfinite(v.num) ? js_number_to_string(v.num) : "null"; break;
      case Kind::Bool: out += v.b ? "true" : "false"; break;
      case Kind::String: json_quote(out, v.str, o.ensure_ascii); break;
      case Kind::Function: fail("Cannot convert to JSON: FunctionValue");
      case Kind::Array:
      case Kind::Object: {
        if (o.indent != 0) {
          if (o.indent < 0 || o.indent > budget) fail("tojson: invalid indent");
          indent_str.assign(static_cast<size_t>(o.indent), ' ');
        }
        bool pretty = o.indent != 0;
        if (v.kind == Kind::Array) {
          // Copy the handle: a namespace reachable from here may not change during the walk,
          // but holding it keeps the items alive regardless.
          auto arr = v.arr;
          out += '[';
          for (size_t i = 0; i < arr->items.size(); ++i) {
            if (i) out += item_sep;
            if (pretty) padding(depth + 1);
            write(arr->items[i], depth + 1);
            check();
          }
          if (pretty && !arr->items.empty()) padding(depth);
          out += ']';
        } else {
          auto obj = v.obj;
          std::vector<size_t> order(obj->entries.size());
          for (size_t i = 0; i < order.size(); ++i) order[i] = i;
          if (o.sort_keys) {
            std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
              return locale_less(obj->entries[x].first, obj->entries[y].first);
            });
          }
          out += '{';
          for (size_t i = 0; i < order.size(); ++i) {
            const auto& [key, val] = obj->entries[order[i]];
            if (i) out += item_sep;
            if (pretty) padding(depth + 1);
            json_quote(out, key, o.ensure_ascii);
            out += key_sep;
            write(val, depth + 1);
            check();
          }
          if (pretty && !order.empty()) padding(depth);
          out += '}';
        }
        break;
      }
    }
    check();
  }
};
}  // namespace

std::string to_json(const Value& v, const JsonOptions& o, bool undefined_to_null, int64_t budget) {
  JsonWriter w{o, undefined_to_null, budget, {}, {}, {}, {}};
  if (o.have_separators) {
    w.item_sep = o.item_sep;
    w.key_sep = o.key_sep;
  } else {
    w.item_sep = o.indent != 0 ? "," : ", ";
    w.key_sep = ": ";
  }
  w.write(v, 0);
  return std::move(w.out);
}

// ---- Equality

namespace {
enum class JsType { Undefined, Null, Boolean, Number, String, Object };
JsType js_type(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return JsType::Undefined;
    case Kind::Null: return JsType::Null;
    case Kind::Bool: return JsType::Boolean;
    case Kind::Int:
    case Kind::Float: return JsType::Number;
    case Kind::String: return JsType::String;
    default: return JsType::Object;
  }
}
bool same_object(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == Kind::Array) return a.arr == b.arr;
  if (a.kind == Kind::Object) return a.obj == b.obj;
  return a.fn == b.fn;
}
}  // namespace

bool strict_equal(const Value& a, const Value& b) {
  JsType ta = js_type(a), tb = js_type(b);
  if (ta != tb) return false;
  switch (ta) {
    case JsType::Undefined:
    case JsType::Null: return true;
    case JsType::Boolean: return a.b == b.b;
    case JsType::Number: return a.num == b.num;
    case JsType::String: return a.str == b.str;
    case JsType::Object: return same_object(a, b);
  }
  return false;
}

bool loose_equal(const Value& a, const Value& b) {
  JsType ta = js_type(a), tb = js_type(b);
  if (ta == tb) return strict_equal(a, b);
  auto nullish = [](JsType t) { return t == JsType::Undefined || t == JsType::Null; };
  if (nullish(ta) || nullish(tb)) return nullish(ta) && nullish(tb);
  if (ta == JsType::Boolean) return loose_equal(Value::integer(a.b ? 1 : 0), b);
  if (tb == JsType::Boolean) return loose_equal(a, Value::integer(b.b ? 1 : 0));
  if (ta == JsType::Number && tb == JsType::String) return a.num == js_string_to_number(b.str);
  if (ta == JsType::String && tb == JsType::Number) return js_string_to_number(a.str) == b.num;
  // An object against a primitive compares its string form (ToPrimitive).
  const int64_t budget = 1 << 20;
  if (ta == JsType::Object) return loose_equal(Value::string(js_value_string(a, budget)), b);
  if (tb == JsType::Object) return loose_equal(a, Value::string(js_value_string(b, budget)));
  return false;
}

static bool numeric_like(const Value& v) {
  return v.kind == Kind::Int || v.kind == Kind::Float || v.kind == Kind::Bool;
}
static double numeric_value(const Value& v) { return v.kind == Kind::Bool ? (v.b ? 1 : 0) : v.num; }

int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  if (a.kind == Kind::Null && b.kind == Kind::Null) return 0;
  if (a.kind == Kind::Null || b.kind == Kind::Null) {
    fail(std::string("Cannot compare ") + type_name(a) + " with " + type_name(b));
  }
  if (a.kind == Kind::Undefined && b.kind == Kind::Undefined) return 0;
  if (a.kind == Kind::Undefined || b.kind == Kind::Undefined) {
    fail(std::string("Cannot compare ") + type_name(a) + " with " + type_name(b));
  }
  if (numeric_like(a) && numeric_like(b)) {
    double x = numeric_value(a), y = numeric_value(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (std::string(type_name(a)) != type_name(b)) {
    fail(std::string("Cannot compare different types: ") + type_name(a) + " and " + type_name(b));
  }
  if (a.kind == Kind::String) {
    if (case_sensitive) return compare_utf16(a.str, b.str);
    return compare_utf16(js_to_lower(a.str), js_to_lower(b.str));
  }
  fail(std::string("Cannot compare type: ") + type_name(a));
}

// ---- From JSON (convertToRuntimeValues after JSON.parse)

// JavaScript objects list array-index keys first, in numeric order, then the others in
// insertion order; the reference sees objects through Object.entries.
static bool is_array_index(const std::string& k) {
  if (k.empty() || k.size() > 10) return false;
  if (k.size() > 1 && k[0] == '0') return false;
  uint64_t v = 0;
  for (char c : k) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v < 4294967295ull;
}

Value from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > k_max_value_depth) fail("context is nested too deeply");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::null();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(static_cast<double>(j.get<int64_t>()));
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::integer(static_cast<double>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: {
      double d = j.get<double>();
      bool integral = std::isfinite(d) && std::trunc(d) == d;
      return integral ? Value::integer(d) : Value::floating(d);
    }
    case nlohmann::ordered_json::value_t::string:
      return Value::string(utf8_sanitize(j.get_ref<const std::string&>()));
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e, depth + 1));
      return make_array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<uint32_t, std::pair<std::string, Value>>> indexed;
      std::vector<std::pair<std::string, Value>> named;
      for (const auto& [k, v] : j.items()) {
        std::string key = utf8_sanitize(k);
        Value val = from_json(v, depth + 1);
        if (is_array_index(key)) {
          indexed.push_back({static_cast<uint32_t>(std::stoul(key)), {key, std::move(val)}});
        } else {
          named.emplace_back(std::move(key), std::move(val));
        }
      }
      std::stable_sort(indexed.begin(), indexed.end(),
                       [](const auto& x, const auto& y) { return x.first < y.first; });
      std::vector<std::pair<std::string, Value>> entries;
      for (auto& e : indexed) entries.push_back(std::move(e.second));
      for (auto& e : named) entries.push_back(std::move(e));
      Value out = make_object(std::move(entries));
      return out;
    }
    default: return Value::undefined();  // binary and discarded values have no JS form
  }
}

}  // namespace slm::jinja::detail
