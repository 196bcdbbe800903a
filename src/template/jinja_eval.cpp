// Jinja evaluator: statements (for/if/set/macro/call/filter blocks) and expressions, with the
// reference's scoping (loop scopes, macros that see their call site) and the render limits.
#include <cmath>

#include "template/jinja_internal.h"

namespace slm::jinja::detail {

namespace {
struct BreakSignal {};
struct ContinueSignal {};
}  // namespace

Value* Env::find_local(const std::string& name) {
  for (auto& [k, v] : vars) {
    if (k == name) return &v;
  }
  return nullptr;
}

void Env::set(const std::string& name, Value v) {
  if (Value* slot = find_local(name)) {
    *slot = std::move(v);
    return;
  }
  vars.emplace_back(name, std::move(v));
}

struct DepthGuard {
  Interp& in;
  explicit DepthGuard(Interp& i) : in(i) {
    if (++in.depth_ > 600 + 8 * in.limits_.max_recursion_depth) fail("evaluation is nested too deeply");
  }
  ~DepthGuard() { --in.depth_; }
};

struct CallGuard {
  Interp& in;
  explicit CallGuard(Interp& i) : in(i) {
    if (++in.call_depth_ > in.limits_.max_recursion_depth) fail("macro recursion is too deep");
  }
  ~CallGuard() { --in.call_depth_; }
};

Interp::Interp(const Limits& limits, const RenderOptions& options)
    : limits_(limits), options_(options) {
  work_budget_ = 64 * (std::max<int64_t>(limits.max_output_bytes, 0) +
                       std::max<int64_t>(limits.max_loop_iterations, 0)) + 100000;
  namespace_fn_ = make_namespace_function();
}

Interp::~Interp() {
  // Namespaces are the only mutable containers, so only they can close reference cycles;
  // emptying them all (while this list still holds each one) frees everything without any
  // recursive destructor chain.
  for (auto& ns : namespaces_) {
    ns->entries.clear();
    ns->index.clear();
  }
}

void Interp::charge(int64_t units) {
  work_ += units;
  if (work_ > work_budget_) fail("template does too much work (render limits exceeded)");
}

void Interp::check_string(size_t bytes) {
  if (static_cast<int64_t>(bytes) > limits_.max_output_bytes) {
    fail("output exceeds max_output_bytes (" + std::to_string(limits_.max_output_bytes) + ")");
  }
  charge(static_cast<int64_t>(bytes) / 16);
}

void Interp::count_iterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations) {
    fail("loop iterations exceed max_loop_iterations (" + std::to_string(limits_.max_loop_iterations) + ")");
  }
  charge(n);
}

std::string Interp::run(const std::vector<NodePtr>& program, const nlohmann::ordered_json& context) {
  auto root = std::make_shared<Env>();
  add_globals(*this, *root);
  if (!context.is_null() && !context.is_object()) fail("the render context must be a JSON object");
  if (context.is_object()) {
    for (const auto& [key, value] : context.items()) {
      std::string k = utf8_sanitize(key);
      if (root->find_local(k) || k == "namespace") fail("Variable already declared: " + k);
      root->set(k, from_json(value));
    }
  }
  try {
    return eval_block(program, root);
  } catch (const BreakSignal&) {
    fail("break outside of a loop");
  } catch (const ContinueSignal&) {
    fail("continue outside of a loop");
  }
}

Value Interp::lookup(const std::string& name, const EnvPtr& env) {
  if (name == "namespace") {  // every scope of the reference carries its own namespace()
    Value* v = env->find_local(name);
    return v ? *v : namespace_fn_;
  }
  for (Env* e = env.get(); e; e = e->parent.get()) {
    if (Value* v = e->find_local(name)) return *v;
  }
  return Value::undefined();
}

std::string Interp::eval_block(const std::vector<NodePtr>& body, const EnvPtr& env) {
  std::string out;
  for (const auto& stmt : body) {
    Value v = evaluate(stmt.get(), env);
    if (v.kind == Kind::Null || v.kind == Kind::Undefined) continue;
    int64_t room = limits_.max_output_bytes - static_cast<int64_t>(out.size());
    if (v.kind == Kind::String) {
      out += v.str;
    } else {
      out += to_output_string(v, std::max<int64_t>(room, 0));
    }
    check_string(out.size());
  }
  return out;
}

std::pair<std::vector<Value>, std::vector<std::pair<std::string, Value>>> Interp::eval_args(
    const std::vector<NodePtr>& args, const EnvPtr& env) {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  auto add_kw = [&](const std::string& k, Value v) {
    for (const auto& e : kw) {
      if (e.first == k) fail("Got multiple values for keyword argument '" + k + "'");
    }
    kw.emplace_back(k, std::move(v));
  };
  for (const auto& a : args) {
    if (a->kind == NodeKind::Spread) {
      Value v = evaluate(a->x.get(), env);
      if (!v.is_array()) fail(std::string("Cannot unpack non-iterable type: ") + type_name(v));
      charge(static_cast<int64_t>(v.arr->items.size()));
      for (const auto& item : v.arr->items) pos.push_back(item);
    } else if (a->kind != NodeKind::KwArg && a->kind != NodeKind::KwSpread) {
      pos.push_back(evaluate(a.get(), env));
    }
  }
  for (const auto& a : args) {
    if (a->kind == NodeKind::KwArg) {
      add_kw(a->str, evaluate(a->x.get(), env));
    } else if (a->kind == NodeKind::KwSpread) {
      Value v = evaluate(a->x.get(), env);
      if (!v.is_plain_object()) fail(std::string("Argument after ** must be a mapping, not ") + type_name(v));
      for (const auto& [k, val] : v.obj->entries) add_kw(k, val);
    }
  }
  return {std::move(pos), std::move(kw)};
}

Value Interp::evaluate(const Node* n, const EnvPtr& env) {
  if (!n) return Value::undefined();
  DepthGuard guard(*this);
  charge(1);
  switch (n->kind) {
    case NodeKind::Str: return Value::string(n->str);
    case NodeKind::Comment: return Value::null();
    case NodeKind::IntLit: return Value::integer(n->num);
    case NodeKind::FloatLit: return Value::floating(n->num);
    case NodeKind::ArrayLit:
    case NodeKind::TupleLit: {
      std::vector<Value> items;
      for (const auto& e : n->a) items.push_back(evaluate(e.get(), env));
      return make_array(std::move(items), n->kind == NodeKind::TupleLit);
    }
    case NodeKind::ObjectLit: {
      Value obj = make_object({});
      for (size_t i = 0; i < n->a.size(); ++i) {
        Value k = evaluate(n->a[i].get(), env);
        if (!k.is_string()) fail(std::string("Object keys must be strings: got ") + type_name(k));
        obj.obj->set(k.str, evaluate(n->b[i].get(), env));
      }
      return obj;
    }
    case NodeKind::Ident: return lookup(n->str, env);
    case NodeKind::Call: return eval_call(n, env);
    case NodeKind::Member: return eval_member(n, env);
    case NodeKind::Unary: {
      Value arg = evaluate(n->x.get(), env);
      if (n->str == "not") return Value::boolean(!truthy(arg));
      double sign = n->str == "-" ? -1 : 1;
      if (arg.kind == Kind::Int || arg.kind == Kind::Float || arg.kind == Kind::Bool) {
        double v = arg.kind == Kind::Bool ? (arg.b ? 1 : 0) : arg.num;
        return arg.kind == Kind::Float ? Value::floating(sign * v) : Value::integer(sign * v);
      }
      fail("Unknown operator \"" + n->str + "\" for " + type_name(arg));
    }
    case NodeKind::Binary: return eval_binary(n, env);
    case NodeKind::Filter: return apply_filter(evaluate(n->x.get(), env), n->y.get(), env);
    case NodeKind::FilterStmt: return apply_filter(Value::string(eval_block(n->a, env)), n->x.get(), env);
    case NodeKind::Test: {
      Value operand = evaluate(n->x.get(), env);
      bool r = apply_test(n->str, operand, nullptr);
      return Value::boolean(n->flag ? !r : r);
    }
    case NodeKind::Select: {
      Value pred = evaluate(n->y.get(), env);
      if (!truthy(pred)) return Value::undefined();
      return evaluate(n->x.get(), env);
    }
    case NodeKind::Ternary: {
      Value cond = evaluate(n->x.get(), env);
      return evaluate(truthy(cond) ? n->y.get() : n->z.get(), env);
    }
    case NodeKind::Set: return eval_set(n, env);
    case NodeKind::If: {
      Value test = evaluate(n->x.get(), env);
      return Value::string(eval_block(truthy(test) ? n->a : n->b, env));
    }
    case NodeKind::For: return Value::string(eval_for(n, env));
    case NodeKind::Macro: return eval_macro(n, env);
    case NodeKind::CallStmt: return eval_call_stmt(n, env);
    case NodeKind::Break: throw BreakSignal{};
    case NodeKind::Continue: throw ContinueSignal{};
    default: fail("Unknown node type");
  }
}

static bool numeric_like(const Value& v) {
  return v.kind == Kind::Int || v.kind == Kind::Float || v.kind == Kind::Bool;
}

Value Interp::eval_binary(const Node* n, const EnvPtr& env) {
  const std::string& op = n->str;
  Value left = evaluate(n->x.get(), env);
  if (op == "and") return truthy(left) ? evaluate(n->y.get(), env) : left;
  if (op == "or") return truthy(left) ? left : evaluate(n->y.get(), env);
  Value right = evaluate(n->y.get(), env);
  if (op == "==") return Value::boolean(loose_equal(left, right));
  if (op == "!=") return Value::boolean(!loose_equal(left, right));

  if (left.kind == Kind::Undefined || right.kind == Kind::Undefined) {
    if (right.kind == Kind::Undefined && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
    fail("Cannot perform operation " + op + " on undefined values");
  } else if (left.kind == Kind::Null || right.kind == Kind::Null) {
    fail("Cannot perform operation on null values");
  } else if (op == "~") {
    int64_t budget = limits_.max_output_bytes;
    std::string s = js_value_string(left, budget);
    s += js_value_string(right, budget);
    check_string(s.size());
    return Value::string(std::move(s));
  } else if (op == "**" && numeric_like(left) && numeric_like(right)) {
    double a = left.kind == Kind::Bool ? left.b : left.num;
    double b = right.kind == Kind::Bool ? right.b : right.num;
    if (a == 0 && b < 0) fail("0.0 cannot be raised to a negative power");
    double r = std::pow(a, b);
    if (std::isnan(b) || (std::fabs(a) == 1 && std::isinf(b))) r = std::nan("");  // JS, not C
    if (!std::isfinite(r)) fail("Exponentiation result is not a finite real number");
    bool is_float = left.kind == Kind::Float || right.kind == Kind::Float || b < 0;
    return is_float ? Value::floating(r) : Value::integer(r);
  } else if (left.is_number() && right.is_number()) {
    double a = left.num, b = right.num;
    bool is_float = left.kind == Kind::Float || right.kind == Kind::Float;
    auto num = [&](double r) { return is_float ? Value::floating(r) : Value::integer(r); };
    if (op == "+") return num(a + b);
    if (op == "-") return num(a - b);
    if (op == "*") return num(a * b);
    if (op == "/") return Value::floating(a / b);
    if (op == "//") return num(std::floor(a / b));
    if (op == "%") return num(std::fmod(a, b));
    if (op == "<") return Value::boolean(a < b);
    if (op == ">") return Value::boolean(a > b);
    if (op == ">=") return Value::boolean(a >= b);
    if (op == "<=") return Value::boolean(a <= b);
  } else if (left.is_array() && right.is_array()) {
    if (op == "+") {
      std::vector<Value> items = left.arr->items;
      items.insert(items.end(), right.arr->items.begin(), right.arr->items.end());
      count_iterations(0);
      charge(static_cast<int64_t>(items.size()));
      if (static_cast<int64_t>(items.size()) > limits_.max_loop_iterations) fail("list grows past max_loop_iterations");
      return make_array(std::move(items));
    }
  } else if (right.is_array()) {
    charge(static_cast<int64_t>(right.arr->items.size()));
    bool member = false;
    for (const auto& x : right.arr->items) {
      if (strict_equal(x, left)) {
        member = true;
        break;
      }
    }
    if (op == "in") return Value::boolean(member);
    if (op == "not in") return Value::boolean(!member);
  }
  if ((left.is_string() || right.is_string()) && op == "+") {
    int64_t budget = limits_.max_output_bytes;
    std::string s = js_value_string(left, budget);
    s += js_value_string(right, budget);
    check_string(s.size());
    return Value::string(std::move(s));
  }
  if (left.is_string() && right.is_string() && (op == "in" || op == "not in")) {
    charge(static_cast<int64_t>(right.str.size()) / 16);
    bool found = right.str.find(left.str) != std::string::npos;
    return Value::boolean(op == "in" ? found : !found);
  }
  if (left.is_string() && right.is_plain_object() && (op == "in" || op == "not in")) {
    bool found = right.obj->get(left.str) != nullptr;
    return Value::boolean(op == "in" ? found : !found);
  }
  fail("Unknown operator \"" + op + "\" between " + type_name(left) + " and " + type_name(right));
}

// The UTF-16 code unit at index i (negative counts from the end), as String.prototype.at.
static Value string_at(const std::string& s, double idx) {
  int64_t len = utf16_length(s);
  double i = std::trunc(idx);
  if (i < 0) i += static_cast<double>(len);
  if (!(i >= 0 && i < static_cast<double>(len))) return Value::undefined();
  auto target = static_cast<int64_t>(i);
  int64_t unit = 0;
  size_t p = 0;
  while (p < s.size()) {
    size_t start = p;
    uint32_t cp = next_code_point(s, p);
    int64_t w = cp >= 0x10000 ? 2 : 1;
    if (target < unit + w) {
      // Half of a surrogate pair is a lone surrogate, which node prints as U+FFFD.
      if (w == 2) return Value::string("\xEF\xBF\xBD");
      return Value::string(s.substr(start, p - start));
    }
    unit += w;
  }
  return Value::undefined();
}

Value Interp::get_member(const Value& object, const Value& property) {
  if (object.kind == Kind::Object) {
    if (!property.is_string()) fail(std::string("Cannot access property with non-string: got ") + type_name(property));
    if (const Value* v = object.obj->get(property.str)) return *v;
    if (object.is_plain_object()) return object_builtin(*this, object, property.str);
    return Value::undefined();
  }
  if (object.is_array() || object.is_string()) {
    if (property.kind == Kind::Int) {
      if (object.is_string()) return string_at(object.str, property.num);
      double i = std::trunc(property.num);
      auto len = static_cast<double>(object.arr->items.size());
      if (i < 0) i += len;
      if (!(i >= 0 && i < len)) return Value::undefined();
      return object.arr->items[static_cast<size_t>(i)];
    }
    if (property.is_string()) {
      if (object.is_string()) return string_builtin(*this, object, property.str);
      if (property.str == "length") return Value::integer(static_cast<double>(object.arr->items.size()));
      return Value::undefined();
    }
    fail(std::string("Cannot access property with non-string/non-number: got ") + type_name(property));
  }
  if (!property.is_string()) fail(std::string("Cannot access property with non-string: got ") + type_name(property));
  return Value::undefined();
}

// Python-style slicing with the reference's clamping.
static std::vector<size_t> slice_indices(size_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto len = static_cast<double>(n);
  double step = step_v.kind == Kind::Undefined ? 1 : step_v.num;
  double dir = step > 0 ? 1 : step < 0 ? -1 : 0;
  double start, stop;
  bool has_start = start_v.kind != Kind::Undefined, has_stop = stop_v.kind != Kind::Undefined;
  if (dir >= 0) {
    start = has_start ? start_v.num : 0;
    start = start < 0 ? std::max(len + start, 0.0) : std::min(start, len);
    stop = has_stop ? stop_v.num : len;
    stop = stop < 0 ? std::max(len + stop, 0.0) : std::min(stop, len);
  } else {
    start = has_start ? start_v.num : len - 1;
    start = start < 0 ? std::max(len + start, -1.0) : std::min(start, len - 1);
    stop = has_stop ? stop_v.num : -1;
    stop = stop < -1 ? std::max(len + stop, -1.0) : std::min(stop, len - 1);
  }
  std::vector<size_t> out;
  if (dir == 0) return out;
  for (double i = start; dir * i < dir * stop; i += step) out.push_back(static_cast<size_t>(i));
  return out;
}

Value Interp::eval_member(const Node* n, const EnvPtr& env) {
  Value object = evaluate(n->x.get(), env);
  Value property;
  if (n->flag) {
    if (n->y->kind == NodeKind::Slice) {
      if (!object.is_array() && !object.is_string()) fail("Slice object must be an array or string");
      const Node* s = n->y.get();
      Value start = evaluate(s->x.get(), env), stop = evaluate(s->y.get(), env), step = evaluate(s->z.get(), env);
      for (const Value* v : {&start, &stop, &step}) {
        if (v->kind != Kind::Int && v->kind != Kind::Undefined) fail("Slice indices must be integers or undefined");
      }
      if (object.is_array()) {
        auto idx = slice_indices(object.arr->items.size(), start, stop, step);
        charge(static_cast<int64_t>(idx.size()));
        std::vector<Value> items;
        for (size_t i : idx) items.push_back(object.arr->items[i]);
        return make_array(std::move(items));
      }
      auto cps = code_points(object.str);
      auto idx = slice_indices(cps.size(), start, stop, step);
      charge(static_cast<int64_t>(cps.size()));
      std::string out;
      for (size_t i : idx) out += cps[i];
      return Value::string(std::move(out));
    }
    property = evaluate(n->y.get(), env);
  } else if (n->y->kind == NodeKind::IntLit) {
    property = Value::integer(n->y->num);
  } else {
    property = Value::string(n->y->str);
  }
  return get_member(object, property);
}

Value Interp::call_function(const Value& fn, std::vector<Value>& args, const EnvPtr& scope) {
  if (fn.kind != Kind::Function) fail(std::string("Cannot call something that is not a function: got ") + type_name(fn));
  auto data = fn.fn;  // keep the function alive while it runs
  return data->fn(*this, args, scope);
}

Value Interp::eval_call(const Node* n, const EnvPtr& env) {
  auto [args, kwargs] = eval_args(n->a, env);
  if (!kwargs.empty()) args.push_back(make_object(std::move(kwargs), ObjKind::Kwargs));
  Value fn = evaluate(n->x.get(), env);
  return call_function(fn, args, env);
}

Value Interp::eval_set(const Node* n, const EnvPtr& env) {
  Value rhs = n->y ? evaluate(n->y.get(), env) : Value::string(eval_block(n->a, env));
  const Node* t = n->x.get();
  if (t->kind == NodeKind::Ident) {
    env->set(t->str, std::move(rhs));
  } else if (t->kind == NodeKind::TupleLit) {
    if (!rhs.is_array()) fail(std::string("Cannot unpack non-iterable type in set: ") + type_name(rhs));
    if (rhs.arr->items.size() != t->a.size()) {
      fail(std::string("Too ") + (t->a.size() > rhs.arr->items.size() ? "few" : "many") + " items to unpack in set");
    }
    for (size_t i = 0; i < t->a.size(); ++i) {
      if (t->a[i]->kind != NodeKind::Ident) fail("Cannot unpack to non-identifier in set");
      env->set(t->a[i]->str, rhs.arr->items[i]);
    }
  } else if (t->kind == NodeKind::Member) {
    Value object = evaluate(t->x.get(), env);
    if (!object.is_namespace()) fail("cannot assign attribute on non-namespace object");
    if (t->y->kind != NodeKind::Ident) fail("Cannot assign to member with non-identifier property");
    object.obj->set(t->y->str, std::move(rhs));
  } else {
    fail("Invalid LHS inside assignment expression");
  }
  return Value::null();
}

std::string Interp::eval_for(const Node* n, const EnvPtr& env) {
  auto scope = std::make_shared<Env>();
  scope->parent = env;
  const Node* test = nullptr;
  Value iterable;
  if (n->y->kind == NodeKind::Select) {
    iterable = evaluate(n->y->x.get(), scope);
    test = n->y->y.get();
  } else {
    iterable = evaluate(n->y.get(), scope);
  }
  if (!iterable.is_array() && !iterable.is_plain_object()) {
    fail(std::string("Expected iterable or object type in for loop: got ") + type_name(iterable));
  }
  if (iterable.is_plain_object()) {  // a mapping iterates over its keys
    std::vector<Value> keys;
    for (const auto& e : iterable.obj->entries) keys.push_back(Value::string(e.first));
    iterable = make_array(std::move(keys));
  }
  const Node* var = n->x.get();
  auto bind = [&](Env& e, const Value& current) {
    if (var->kind == NodeKind::Ident) {
      e.set(var->str, current);
      return;
    }
    for (size_t j = 0; j < var->a.size(); ++j) {
      if (var->a[j]->kind != NodeKind::Ident) fail("Cannot unpack non-identifier type");
      e.set(var->a[j]->str, current.arr->items[j]);
    }
  };
  std::vector<Value> items;
  for (const Value& current : iterable.arr->items) {
    charge(1);
    if (var->kind == NodeKind::TupleLit) {
      if (!current.is_array() || current.arr->tuple) fail(std::string("Cannot unpack non-iterable type: ") + type_name(current));
      if (var->a.size() != current.arr->items.size()) {
        fail(std::string("Too ") + (var->a.size() > current.arr->items.size() ? "few" : "many") + " items to unpack");
      }
    }
    if (test) {
      auto loop_scope = std::make_shared<Env>();
      loop_scope->parent = scope;
      bind(*loop_scope, current);
      if (!truthy(evaluate(test, loop_scope))) continue;
    }
    items.push_back(current);
  }
  std::string result;
  bool no_iteration = true;
  const size_t count = items.size();
  for (size_t i = 0; i < count; ++i) {
    count_iterations(1);
    auto d = static_cast<double>(i), len = static_cast<double>(count);
    scope->set("loop", make_object({{"index", Value::integer(d + 1)},
                                     {"index0", Value::integer(d)},
                                     {"revindex", Value::integer(len - d)},
                                     {"revindex0", Value::integer(len - d - 1)},
                                     {"first", Value::boolean(i == 0)},
                                     {"last", Value::boolean(i == count - 1)},
                                     {"length", Value::integer(len)},
                                     {"previtem", i > 0 ? items[i - 1] : Value::undefined()},
                                     {"nextitem", i + 1 < count ? items[i + 1] : Value::undefined()}}));
    bind(*scope, items[i]);
    try {
      result += eval_block(n->a, scope);
      check_string(result.size());
    } catch (const ContinueSignal&) {
      continue;
    } catch (const BreakSignal&) {
      break;
    }
    no_iteration = false;
  }
  if (no_iteration) result += eval_block(n->b, scope);
  return result;
}

void Interp::bind_macro_args(const std::string& display, const std::vector<NodePtr>& params,
                             bool uses_kwargs, bool uses_varargs, std::vector<Value> args,
                             const EnvPtr& scope) {
  std::vector<std::pair<std::string, Value>> kwargs;
  if (!args.empty() && args.back().is_kwargs()) {
    kwargs = args.back().obj->entries;
    args.pop_back();
  }
  std::vector<const Node*> pending;
  for (size_t i = 0; i < params.size(); ++i) {
    const Node* p = params[i].get();
    bool found = i < args.size();
    Value v = found ? args[i] : Value::undefined();
    if (!found) {
      for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
        if (it->first == p->str) {
          v = it->second;
          kwargs.erase(it);
          found = true;
          break;
        }
      }
    }
    if (!found && p->kind == NodeKind::KwArg) pending.push_back(p);
    scope->set(p->str, std::move(v));
  }
  if (uses_kwargs) {
    scope->set("kwargs", make_object(std::move(kwargs)));
  } else if (!kwargs.empty()) {
    fail("macro " + display + " takes no keyword argument '" + kwargs.front().first + "'");
  }
  if (uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = params.size(); i < args.size(); ++i) rest.push_back(args[i]);
    scope->set("varargs", make_array(std::move(rest)));
  } else if (args.size() > params.size()) {
    fail("macro " + display + " takes not more than " + std::to_string(params.size()) + " argument(s)");
  }
  for (const Node* p : pending) scope->set(p->str, evaluate(p->x.get(), scope));
}

Value Interp::eval_macro(const Node* n, const EnvPtr& env) {
  env->set(n->str, make_function(n->str, [n](Interp& in, std::vector<Value>& args, const EnvPtr& scope) {
    CallGuard guard(in);
    auto macro_scope = std::make_shared<Env>();
    macro_scope->parent = scope;  // macros see their call site, as in the reference
    in.bind_macro_args("'" + n->str + "'", n->a, n->uses_kwargs, n->uses_varargs, args, macro_scope);
    return Value::string(in.eval_block(n->b, macro_scope));
  }));
  return Value::null();
}

Value Interp::eval_call_stmt(const Node* n, const EnvPtr& env) {
  Value caller = make_function("caller", [n, env](Interp& in, std::vector<Value>& args, const EnvPtr&) {
    CallGuard guard(in);
    auto block_env = std::make_shared<Env>();
    block_env->parent = env;
    in.bind_macro_args("None", n->a, n->uses_kwargs, n->uses_varargs, args, block_env);
    return Value::string(in.eval_block(n->b, block_env));
  });
  auto [args, kwargs] = eval_args(n->x->a, env);
  args.push_back(make_object(std::move(kwargs), ObjKind::Kwargs));
  Value fn = evaluate(n->x->x.get(), env);
  auto new_env = std::make_shared<Env>();
  new_env->parent = env;
  new_env->set("caller", caller);
  return call_function(fn, args, new_env);
}

}  // namespace slm::jinja::detail
