// Jinja built-ins: filters, tests, string and dict methods, and the globals (range, namespace,
// raise_exception, strftime_now), each with the reference's argument rules and results.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_set>

#include "template/jinja_internal.h"

namespace slm::jinja::detail {

namespace {

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

const Value* kw_get(const Kwargs& kw, const std::string& k) {
  for (const auto& e : kw) {
    if (e.first == k) return &e.second;
  }
  return nullptr;
}

// args.at(i) ?? kwargs.get(name) ?? fallback
Value arg_or(const Args& args, size_t i, const Kwargs& kw, const char* name, Value fallback) {
  if (i < args.size()) return args[i];
  if (const Value* v = kw_get(kw, name)) return *v;
  return fallback;
}

// JavaScript truthiness of a runtime value's raw .value (objects are always true).
bool raw_truthy(const Value& v) {
  if (v.kind == Kind::Array || v.kind == Kind::Object || v.kind == Kind::Function) return true;
  return truthy(v);
}

Value str_value(Interp& in, std::string s) {
  in.check_string(s.size());
  return Value::string(std::move(s));
}

Value make_fn(const char* name, NativeFn fn) { return make_function(name, std::move(fn)); }

std::string title_case(const std::string& s) {  // /\b\w/g with an ASCII \w
  auto word = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    if (word(out[i]) && (i == 0 || !word(out[i - 1])) && out[i] >= 'a' && out[i] <= 'z') out[i] = static_cast<char>(out[i] - 32);
  }
  return out;
}

std::string capitalize(const std::string& s) {  // charAt(0).toUpperCase() + slice(1)
  if (s.empty()) return s;
  size_t i = 0;
  uint32_t cp = next_code_point(s, i);
  if (cp >= 0x10000) return s;  // half a surrogate pair does not change case
  return js_to_upper(s.substr(0, i)) + s.substr(i);
}

std::string js_replace(Interp& in, const std::string& s, const std::string& from, const std::string& to, double count) {
  if (count == 0) return s;
  double remaining = std::isnan(count) || count < 0 ? INFINITY : count;
  std::string out;
  if (from.empty()) {  // matches at every code point boundary, both ends included
    size_t i = 0;
    while (true) {
      if (remaining > 0) {
        out += to;
        --remaining;
      }
      if (i >= s.size()) break;
      size_t start = i;
      next_code_point(s, i);
      out.append(s, start, i - start);
      in.check_string(out.size());
    }
    return out;
  }
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos || remaining <= 0) break;
    out.append(s, pos, hit - pos);
    out += to;
    --remaining;
    pos = hit + from.size();
    in.check_string(out.size());
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value split_string(Interp& in, const std::string& s, Args& args) {
  Value sep = args.size() > 0 ? args[0] : Value::null();
  if (!sep.is_string() && sep.kind != Kind::Null) fail("sep argument must be a string or null");
  Value maxsplit = args.size() > 1 ? args[1] : Value::integer(-1);
  if (maxsplit.kind != Kind::Int) fail("maxsplit argument must be a number");
  double max = maxsplit.num;
  std::vector<std::string> parts;
  if (sep.kind == Kind::Null) {
    std::string_view text = js_trim(s, true, false);
    size_t i = 0;
    while (i < text.size()) {
      while (size_t k = js_space_len_at(text, i)) i += k;
      if (i >= text.size()) break;
      size_t start = i;
      while (i < text.size() && js_space_len_at(text, i) == 0) next_code_point(text, i);
      if (max != -1 && static_cast<double>(parts.size()) >= max) {
        parts.emplace_back(text.substr(start));
        break;
      }
      parts.emplace_back(text.substr(start, i - start));
    }
  } else {
    if (sep.str.empty()) fail("empty separator");
    size_t pos = 0;
    while (true) {
      size_t hit = s.find(sep.str, pos);
      if (hit == std::string::npos) break;
      parts.push_back(s.substr(pos, hit - pos));
      pos = hit + sep.str.size();
    }
    parts.push_back(s.substr(pos));
    auto n = static_cast<double>(parts.size());
    if (max != -1 && n > max) {  // result.push(result.splice(max).join(sep))
      double start = max < 0 ? std::max(n + max, 0.0) : std::min(max, n);
      auto k = static_cast<size_t>(start);
      std::string rest;
      for (size_t i = k; i < parts.size(); ++i) rest += (i > k ? sep.str : "") + parts[i];
      parts.resize(k);
      parts.push_back(rest);
    }
  }
  in.charge(static_cast<int64_t>(parts.size()));
  std::vector<Value> items;
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return make_array(std::move(items));
}

Value starts_ends(const std::string& s, Args& args, bool ends, const char* name) {
  if (args.empty()) fail(std::string(name) + "() requires at least one argument");
  auto test = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return ends ? s.compare(s.size() - p.size(), p.size(), p) == 0 : s.compare(0, p.size(), p) == 0;
  };
  const Value& pattern = args[0];
  if (pattern.is_string()) return Value::boolean(test(pattern.str));
  if (pattern.is_array()) {
    for (const auto& item : pattern.arr->items) {
      if (!item.is_string()) fail(std::string(name) + "() tuple elements must be strings");
      if (test(item.str)) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  fail(std::string(name) + "() argument must be a string or tuple of strings");
}

Value replace_method(Interp& in, const std::string& s, Args& args) {
  if (args.size() < 2) fail("replace() requires at least two arguments");
  if (!args[0].is_string() || !args[1].is_string()) fail("replace() arguments must be strings");
  Value count = Value::null();
  if (args.size() > 2) {
    if (args[2].is_kwargs()) {
      const Value* c = args[2].obj->get("count");
      count = c ? *c : Value::null();
    } else {
      count = args[2];
    }
  }
  if (count.kind != Kind::Int && count.kind != Kind::Null) fail("replace() count argument must be a number or null");
  double c = count.kind == Kind::Null ? NAN : count.num;
  return str_value(in, js_replace(in, s, args[0].str, args[1].str, c));
}

// getAttributeValue: "a.b.0" through objects, namespaces and arrays.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (v.kind == Kind::Object) {
      const Value* x = v.obj->get(part);
      v = x ? *x : Value::undefined();
    } else if (v.is_array()) {
      double idx = js_parse_int(part);
      if (!std::isnan(idx) && idx >= 0 && idx < static_cast<double>(v.arr->items.size())) {
        v = v.arr->items[static_cast<size_t>(idx)];
      } else {
        return Value::undefined();
      }
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return v;
}

Value dictsort(Interp& in, const Value& o, Args& args) {
  Kwargs kw;
  Args pos;
  for (const auto& a : args) {
    if (a.is_kwargs()) {
      kw = a.obj->entries;
    } else {
      pos.push_back(a);
    }
  }
  Value cs = arg_or(pos, 0, kw, "case_sensitive", Value::boolean(false));
  if (cs.kind != Kind::Bool) fail("case_sensitive must be a boolean");
  Value by = arg_or(pos, 1, kw, "by", Value::string("key"));
  if (!by.is_string()) fail("by must be a string");
  if (by.str != "key" && by.str != "value") fail("by must be either 'key' or 'value'");
  Value rev = arg_or(pos, 2, kw, "reverse", Value::boolean(false));
  if (rev.kind != Kind::Bool) fail("reverse must be a boolean");
  std::vector<Value> items;
  for (const auto& [k, v] : o.obj->entries) items.push_back(make_array({Value::string(k), v}));
  in.charge(static_cast<int64_t>(items.size()) * 20);
  size_t idx = by.str == "key" ? 0 : 1;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    int r = compare_values(a.arr->items[idx], b.arr->items[idx], cs.b);
    return rev.b ? r > 0 : r < 0;
  });
  return make_array(std::move(items));
}

std::string strftime_js(const std::string& fmt, const std::tm& t) {
  static const char* k_short[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char* k_long[] = {"January", "February", "March",     "April",   "May",      "June",
                                 "July",    "August",   "September", "October", "November", "December"};
  auto pad2 = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] == '%' && i + 1 < fmt.size()) {
      char c = fmt[i + 1];
      std::string rep;
      bool known = true;
      switch (c) {
        case 'Y': rep = std::to_string(t.tm_year + 1900); break;
        case 'm': rep = pad2(t.tm_mon + 1); break;
        case 'd': rep = pad2(t.tm_mday); break;
        case 'b': rep = k_short[t.tm_mon % 12]; break;
        case 'B': rep = k_long[t.tm_mon % 12]; break;
        case 'H': rep = pad2(t.tm_hour); break;
        case 'M': rep = pad2(t.tm_min); break;
        case '%': rep = "%"; break;
        default: known = false;
      }
      if (known) {
        out += rep;
        ++i;
        continue;
      }
    }
    out += fmt[i];
  }
  return out;
}

}  // namespace

Value string_builtin(Interp& in, const Value& sv, const std::string& name) {
  const std::string s = sv.str;
  auto method = [&](NativeFn fn) { return make_fn(name.c_str(), std::move(fn)); };
  if (name == "length") return Value::integer(static_cast<double>(utf16_length(s)));
  if (name == "upper") return method([s](Interp& i, Args&, const EnvPtr&) { return str_value(i, js_to_upper(s)); });
  if (name == "lower") return method([s](Interp& i, Args&, const EnvPtr&) { return str_value(i, js_to_lower(s)); });
  if (name == "strip") return method([s](Interp&, Args&, const EnvPtr&) { return Value::string(std::string(js_trim(s, true, true))); });
  if (name == "lstrip") return method([s](Interp&, Args&, const EnvPtr&) { return Value::string(std::string(js_trim(s, true, false))); });
  if (name == "rstrip") return method([s](Interp&, Args&, const EnvPtr&) { return Value::string(std::string(js_trim(s, false, true))); });
  if (name == "title") return method([s](Interp&, Args&, const EnvPtr&) { return Value::string(title_case(s)); });
  if (name == "capitalize") return method([s](Interp&, Args&, const EnvPtr&) { return Value::string(capitalize(s)); });
  if (name == "startswith") return method([s](Interp&, Args& a, const EnvPtr&) { return starts_ends(s, a, false, "startswith"); });
  if (name == "endswith") return method([s](Interp&, Args& a, const EnvPtr&) { return starts_ends(s, a, true, "endswith"); });
  if (name == "split") return method([s](Interp& i, Args& a, const EnvPtr&) { return split_string(i, s, a); });
  if (name == "replace") return method([s](Interp& i, Args& a, const EnvPtr&) { return replace_method(i, s, a); });
  (void)in;
  return Value::undefined();
}

Value object_builtin(Interp& in, const Value& o, const std::string& name) {
  (void)in;
  auto method = [&](NativeFn fn) { return make_fn(name.c_str(), std::move(fn)); };
  auto obj = o;  // captured by value: shares the map
  if (name == "get") {
    return method([obj](Interp&, Args& a, const EnvPtr&) {
      if (a.empty() || !a[0].is_string()) fail("Object key must be a string");
      if (const Value* v = obj.obj->get(a[0].str)) return *v;
      return a.size() > 1 ? a[1] : Value::null();
    });
  }
  if (name == "items" || name == "keys" || name == "values") {
    std::string which = name;
    return method([obj, which](Interp& i, Args&, const EnvPtr&) {
      std::vector<Value> items;
      i.charge(static_cast<int64_t>(obj.obj->entries.size()));
      for (const auto& [k, v] : obj.obj->entries) {
        if (which == "items") items.push_back(make_array({Value::string(k), v}));
        if (which == "keys") items.push_back(Value::string(k));
        if (which == "values") items.push_back(v);
      }
      return make_array(std::move(items));
    });
  }
  if (name == "dictsort") return method([obj](Interp& i, Args& a, const EnvPtr&) { return dictsort(i, obj, a); });
  return Value::undefined();
}

Value make_namespace_function() {
  return make_fn("namespace", [](Interp& in, Args& args, const EnvPtr&) {
    Args positional = args;
    Kwargs kw;
    if (!positional.empty() && positional.back().is_kwargs()) {
      kw = positional.back().obj->entries;
      positional.pop_back();
    }
    if (positional.size() > 1) fail("namespace expected at most 1 argument");
    Value ns = make_object({}, ObjKind::Namespace);
    in.register_namespace(ns);
    if (positional.size() == 1) {
      const Value& src = positional[0];
      if (src.is_plain_object()) {
        for (const auto& [k, v] : src.obj->entries) ns.obj->set(k, v);
      } else if (src.is_array()) {
        for (const auto& pair : src.arr->items) {
          std::vector<Value> kv;
          if (pair.is_array()) {
            kv = pair.arr->items;
          } else if (pair.is_string()) {
            for (auto& c : code_points(pair.str)) kv.push_back(Value::string(c));
          }
          if (kv.size() != 2) fail("namespace expected an object or an iterable of [key, value] pairs");
          if (!kv[0].is_string()) fail("namespace keys must be strings");
          ns.obj->set(kv[0].str, kv[1]);
        }
      } else {
        fail(std::string("'") + type_name(src) + "' object is not iterable");
      }
    }
    for (const auto& [k, v] : kw) ns.obj->set(k, v);
    return ns;
  });
}

Value Interp::make_range(const std::vector<Value>& args) {
  std::vector<double> nums;
  for (const auto& a : args) {
    if (!a.is_number()) fail("range() arguments must be numbers");
    nums.push_back(a.num);
  }
  if (nums.empty() || nums.size() > 3) fail("range() takes 1 to 3 arguments");
  double start = 0, stop = nums[0], step = 1;
  if (nums.size() >= 2) {
    start = nums[0];
    stop = nums[1];
  }
  if (nums.size() == 3) step = nums[2];
  if (step == 0) fail("range() step must not be zero");
  double n = step > 0 ? std::ceil((stop - start) / step) : std::ceil((start - stop) / -step);
  if (!(n > 0)) n = 0;
  if (n > static_cast<double>(limits_.max_loop_iterations)) {
    fail("range() of " + js_number_to_string(n) + " items exceeds max_loop_iterations (" +
         std::to_string(limits_.max_loop_iterations) + ")");
  }
  count_iterations(static_cast<int64_t>(n));
  std::vector<Value> items;
  double i = start;
  for (int64_t k = 0; k < static_cast<int64_t>(n); ++k, i += step) {
    items.push_back(std::trunc(i) == i ? Value::integer(i) : Value::floating(i));
  }
  return make_array(std::move(items));
}

void add_globals(Interp& in, Env& root) {
  (void)in;
  root.set("false", Value::boolean(false));
  root.set("true", Value::boolean(true));
  root.set("none", Value::null());
  root.set("raise_exception", make_fn("raise_exception", [](Interp& i, Args& a, const EnvPtr&) -> Value {
    std::string msg = a.empty() ? "undefined" : js_value_string(a[0], i.max_output());
    fail("raise_exception: " + msg);
  }));
  root.set("range", make_fn("range", [](Interp& i, Args& a, const EnvPtr&) { return i.make_range(a); }));
  root.set("strftime_now", make_fn("strftime_now", [](Interp& i, Args& a, const EnvPtr&) {
    if (a.empty() || !a[0].is_string()) fail("strftime_now() needs a format string");
    const RenderOptions& o = i.options();
    std::time_t now = o.now_unix_seconds >= 0 ? static_cast<std::time_t>(o.now_unix_seconds) : std::time(nullptr);
    std::tm t{};
    if (o.utc) {
      gmtime_r(&now, &t);
    } else {
      localtime_r(&now, &t);
    }
    return str_value(i, strftime_js(a[0].str, t));
  }));
  root.set("True", Value::boolean(true));
  root.set("False", Value::boolean(false));
  root.set("None", Value::null());
}

bool Interp::apply_test(const std::string& name, const Value& v, const Value* arg) {
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "callable") return v.kind == Kind::Function;
  if (name == "odd" || name == "even") {
    if (v.kind != Kind::Int) fail("cannot " + name + " on " + type_name(v));
    bool odd = std::fmod(v.num, 2) != 0;
    return name == "odd" ? odd : !odd;
  }
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "none") return v.kind == Kind::Null;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "iterable") return (v.is_array() && !v.arr->tuple) || v.is_string();
  if (name == "mapping") return v.is_plain_object();
  if (name == "sequence") return v.is_array() || v.is_plain_object() || v.is_string();
  if (name == "lower") return v.is_string() && v.str == js_to_lower(v.str);
  if (name == "upper") return v.is_string() && v.str == js_to_upper(v.str);
  if (name == "defined") return v.kind != Kind::Undefined;
  if (name == "undefined") return v.kind == Kind::Undefined;
  if (name == "equalto" || name == "eq") {
    if (!arg) fail("the " + name + " test needs a value to compare with");
    return strict_equal(v, *arg);
  }
  fail("Unknown test: " + name);
}

Value Interp::apply_filter(Value operand, const Node* filter, const EnvPtr& env) {
  const int64_t budget = limits_.max_output_bytes;
  if (filter->kind == NodeKind::Ident) {
    const std::string& f = filter->str;
    if (f == "safe") return operand;
    if (f == "tojson") return str_value(*this, to_json(operand, JsonOptions{}, true, budget));
    if (operand.is_array()) {
      const auto& items = operand.arr->items;
      if (f == "list") return operand;
      if (f == "first") return items.empty() ? Value::undefined() : items.front();
      if (f == "last") return items.empty() ? Value::undefined() : items.back();
      if (f == "length") return Value::integer(static_cast<double>(items.size()));
      if (f == "reverse") return make_array(std::vector<Value>(items.rbegin(), items.rend()));
      if (f == "sort") {
        std::vector<Value> sorted = items;
        charge(static_cast<int64_t>(sorted.size()) * 20);
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const Value& a, const Value& b) { return compare_values(a, b, false) < 0; });
        return make_array(std::move(sorted));
      }
      if (f == "join") {
        std::string out;
        for (const auto& x : items) {
          if (x.kind != Kind::Null && x.kind != Kind::Undefined) out += js_value_string(x, budget);
          check_string(out.size());
        }
        return Value::string(std::move(out));
      }
      if (f == "string") return str_value(*this, to_json(operand, JsonOptions{}, false, budget));
      if (f == "unique") {
        std::unordered_set<std::string> seen;
        std::vector<Value> out;
        for (const auto& x : items) {
          std::string key;
          switch (x.kind) {
            case Kind::Int:
            case Kind::Float: key = "n" + js_number_to_string(x.num == 0 ? 0 : x.num); break;
            case Kind::String: key = "s" + x.str; break;
            case Kind::Bool: key = x.b ? "t" : "f"; break;
            case Kind::Null: key = "N"; break;
            case Kind::Undefined: key = "U"; break;
            case Kind::Array: key = "a" + std::to_string(reinterpret_cast<uintptr_t>(x.arr.get())); break;
            case Kind::Object: key = "o" + std::to_string(reinterpret_cast<uintptr_t>(x.obj.get())); break;
            case Kind::Function: key = "f" + std::to_string(reinterpret_cast<uintptr_t>(x.fn.get())); break;
          }
          charge(1);
          if (seen.insert(key).second) out.push_back(x);
        }
        return make_array(std::move(out));
      }
      fail("Unknown ArrayValue filter: " + f);
    }
    if (operand.is_string()) {
      const std::string& s = operand.str;
      if (f == "length") return Value::integer(static_cast<double>(utf16_length(s)));
      if (f == "upper") return str_value(*this, js_to_upper(s));
      if (f == "lower") return str_value(*this, js_to_lower(s));
      if (f == "title") return Value::string(title_case(s));
      if (f == "capitalize") return Value::string(capitalize(s));
      if (f == "trim") return Value::string(std::string(js_trim(s, true, true)));
      if (f == "indent") {
        std::string out;
        size_t pos = 0;
        bool first = true;
        while (true) {
          size_t nl = s.find('\n', pos);
          std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          if (!first) out += '\n';
          if (!first && !line.empty()) out += "    ";
          out += line;
          check_string(out.size());
          first = false;
          if (nl == std::string::npos) break;
          pos = nl + 1;
        }
        return Value::string(std::move(out));
      }
      if (f == "join" || f == "string") return operand;
      if (f == "int") {
        double v = js_parse_int(s);
        return Value::integer(std::isnan(v) ? 0 : v);
      }
      if (f == "float") {
        double v = js_parse_float(s);
        return Value::floating(std::isnan(v) ? 0 : v);
      }
      fail("Unknown StringValue filter: " + f);
    }
    if (operand.is_number()) {
      if (f == "abs") return operand.kind == Kind::Int ? Value::integer(std::fabs(operand.num)) : Value::floating(std::fabs(operand.num));
      if (f == "int") return Value::integer(std::floor(operand.num));
      if (f == "float") return Value::floating(operand.num);
      if (f == "string") return Value::string(to_output_string(operand, budget));
      fail("Unknown NumericValue filter: " + f);
    }
    if (operand.is_plain_object()) {
      if (f == "items") {
        std::vector<Value> items;
        for (const auto& [k, v] : operand.obj->entries) items.push_back(make_array({Value::string(k), v}));
        return make_array(std::move(items));
      }
      if (f == "length") return Value::integer(static_cast<double>(operand.obj->entries.size()));
      Value b = object_builtin(*this, operand, f);
      if (b.kind == Kind::Function) {
        Args none;
        return b.fn->fn(*this, none, env);
      }
      fail("Unknown ObjectValue filter: " + f);
    }
    if (operand.kind == Kind::Bool) {
      if (f == "bool") return operand;
      if (f == "int") return Value::integer(operand.b ? 1 : 0);
      if (f == "float") return Value::floating(operand.b ? 1 : 0);
      if (f == "string") return Value::string(operand.b ? "true" : "false");
      fail("Unknown BooleanValue filter: " + f);
    }
    fail("Cannot apply filter \"" + f + "\" to type: " + type_name(operand));
  }
  if (filter->kind != NodeKind::Call) fail("Unknown filter");
  if (filter->x->kind != NodeKind::Ident) fail("Unknown filter");
  const std::string& f = filter->x->str;
  if (f == "tojson") {
    auto [args, kw] = eval_args(filter->a, env);
    JsonOptions o;
    const Value* indent = kw_get(kw, "indent");
    if (indent && indent->kind != Kind::Int && indent->kind != Kind::Null) fail("If set, indent must be a number");
    if (indent && indent->kind == Kind::Int) {
      if (!std::isfinite(indent->num) || indent->num < 0) fail("tojson: invalid indent");
      o.indent = static_cast<int64_t>(std::min(indent->num, 1e9));
    }
    const Value* ea = kw_get(kw, "ensure_ascii");
    if (ea && ea->kind != Kind::Bool) fail("If set, ensure_ascii must be a boolean");
    o.ensure_ascii = ea && ea->b;
    const Value* sk = kw_get(kw, "sort_keys");
    if (sk && sk->kind != Kind::Bool) fail("If set, sort_keys must be a boolean");
    o.sort_keys = sk && sk->b;
    const Value* sep = kw_get(kw, "separators");
    if (sep && sep->is_array()) {
      const auto& it = sep->arr->items;
      if (it.size() != 2 || !it[0].is_string() || !it[1].is_string()) fail("separators must be a tuple of two strings");
      o.have_separators = true;
      o.item_sep = it[0].str;
      o.key_sep = it[1].str;
    } else if (sep && sep->kind != Kind::Null) {
      fail("If set, separators must be a tuple of two strings");
    }
    return str_value(*this, to_json(operand, o, true, budget));
  }
  if (f == "join") {
    std::vector<std::string> parts;
    if (operand.is_string()) {
      parts = code_points(operand.str);
    } else if (operand.is_array()) {
      for (const auto& x : operand.arr->items) {
        parts.push_back(x.kind == Kind::Null || x.kind == Kind::Undefined ? "" : js_value_string(x, budget));
        check_string(parts.back().size());
      }
    } else {
      fail("Cannot apply filter \"join\" to type: " + std::string(type_name(operand)));
    }
    auto [args, kw] = eval_args(filter->a, env);
    Value sep = arg_or(args, 0, kw, "separator", Value::string(""));
    if (!sep.is_string()) fail("separator must be a string");
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i) out += sep.str;
      out += parts[i];
      check_string(out.size());
    }
    return Value::string(std::move(out));
  }
  if (f == "int" || f == "float") {
    auto [args, kw] = eval_args(filter->a, env);
    bool is_int = f == "int";
    Value def = arg_or(args, 0, kw, "default", is_int ? Value::integer(0) : Value::floating(0));
    if (operand.is_string()) {
      double v = is_int ? js_parse_int(operand.str) : js_parse_float(operand.str);
      if (std::isnan(v)) return def;
      return is_int ? Value::integer(v) : Value::floating(v);
    }
    if (operand.is_number()) return operand;
    if (operand.kind == Kind::Bool) return is_int ? Value::integer(operand.b) : Value::floating(operand.b);
    fail("Cannot apply filter \"" + f + "\" to type: " + type_name(operand));
  }
  if (f == "default") {
    auto [args, kw] = eval_args(filter->a, env);
    Value def = args.size() > 0 ? args[0] : Value::string("");
    Value boolean = arg_or(args, 1, kw, "boolean", Value::boolean(false));
    if (boolean.kind != Kind::Bool) fail("`default` filter flag must be a boolean");
    if (operand.kind == Kind::Undefined || (boolean.b && !truthy(operand))) return def;
    return operand;
  }
  if (operand.is_array()) {
    const auto& items = operand.arr->items;
    if (f == "sort") {
      auto [args, kw] = eval_args(filter->a, env);
      Value rev = arg_or(args, 0, kw, "reverse", Value::boolean(false));
      if (rev.kind != Kind::Bool) fail("reverse must be a boolean");
      Value cs = arg_or(args, 1, kw, "case_sensitive", Value::boolean(false));
      if (cs.kind != Kind::Bool) fail("case_sensitive must be a boolean");
      Value attr = arg_or(args, 2, kw, "attribute", Value::null());
      if (!attr.is_string() && attr.kind != Kind::Int && attr.kind != Kind::Null) fail("attribute must be a string, integer, or null");
      auto key = [&](const Value& item) {
        if (attr.kind == Kind::Null) return item;
        return attribute_path(item, attr.is_string() ? attr.str : js_number_to_string(attr.num));
      };
      std::vector<Value> sorted = items;
      charge(static_cast<int64_t>(sorted.size()) * 20);
      std::stable_sort(sorted.begin(), sorted.end(), [&](const Value& a, const Value& b) {
        int r = compare_values(key(a), key(b), cs.b);
        return rev.b ? r > 0 : r < 0;
      });
      return make_array(std::move(sorted));
    }
    if (f == "selectattr" || f == "rejectattr") {
      bool select = f == "selectattr";
      for (const auto& item : items) {
        if (item.kind != Kind::Object) fail("`" + f + "` can only be applied to array of objects");
      }
      for (const auto& a : filter->a) {
        if (a->kind != NodeKind::Str) fail("arguments of `" + f + "` must be strings");
      }
      std::vector<Value> vals;
      for (const auto& a : filter->a) vals.push_back(evaluate(a.get(), env));
      if (vals.empty()) fail("`" + f + "` needs an attribute name");
      std::vector<Value> out;
      for (const auto& item : items) {
        charge(1);
        const Value* a = item.obj->get(vals[0].str);
        bool r = false;
        if (a) r = vals.size() > 1 ? apply_test(vals[1].str, *a, vals.size() > 2 ? &vals[2] : nullptr) : truthy(*a);
        if (select ? r : !r) out.push_back(item);
      }
      return make_array(std::move(out));
    }
    if (f == "map") {
      auto [args, kw] = eval_args(filter->a, env);
      const Value* attr = kw_get(kw, "attribute");
      if (!attr) fail("`map` expressions without `attribute` set are not currently supported.");
      if (!attr->is_string()) fail("attribute must be a string");
      const Value* def = kw_get(kw, "default");
      std::vector<Value> out;
      for (const auto& item : items) {
        if (item.kind != Kind::Object) fail("items in map must be an object");
        Value v = attribute_path(item, attr->str);
        out.push_back(v.kind == Kind::Undefined ? (def ? *def : Value::undefined()) : v);
      }
      return make_array(std::move(out));
    }
    fail("Unknown ArrayValue filter: " + f);
  }
  if (operand.is_string()) {
    if (f == "indent") {
      auto [args, kw] = eval_args(filter->a, env);
      Value width = arg_or(args, 0, kw, "width", Value::integer(4));
      if (width.kind != Kind::Int) fail("width must be a number");
      if (!(width.num >= 0) || width.num > static_cast<double>(budget)) fail("indent: invalid width");
      bool first = raw_truthy(arg_or(args, 1, kw, "first", Value::boolean(false)));
      bool blank = raw_truthy(arg_or(args, 2, kw, "blank", Value::boolean(false)));
      std::string pad(static_cast<size_t>(width.num), ' ');
      const std::string& s = operand.str;
      std::string out;
      size_t pos = 0;
      for (size_t i = 0;; ++i) {
        size_t nl = s.find('\n', pos);
        std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (i) out += '\n';
        if (!((!first && i == 0) || (!blank && line.empty()))) out += pad;
        out += line;
        check_string(out.size());
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
      return Value::string(std::move(out));
    }
    if (f == "replace") {
      auto [args, kw] = eval_args(filter->a, env);
      args.push_back(make_object(std::move(kw), ObjKind::Kwargs));
      return replace_method(*this, operand.str, args);
    }
    fail("Unknown StringValue filter: " + f);
  }
  if (operand.is_plain_object()) {
    Value b = object_builtin(*this, operand, f);
    if (b.kind == Kind::Function) {
      auto [args, kw] = eval_args(filter->a, env);
      if (!kw.empty()) args.push_back(make_object(std::move(kw), ObjKind::Kwargs));
      return b.fn->fn(*this, args, env);
    }
    fail("Unknown ObjectValue filter: " + f);
  }
  fail("Cannot apply filter \"" + f + "\" to type: " + type_name(operand));
}

}  // namespace slm::jinja::detail
