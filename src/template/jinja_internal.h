// Internal pieces of the Jinja interpreter shared by its lexer, parser, values and evaluator.
// The semantics follow @huggingface/jinja (the reference renderer), quirks included.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "template/jinja.h"

namespace slm::jinja::detail {

// Errors inside the interpreter unwind as this exception and are turned into a Status at the
// public boundary (Template::parse / render). Nothing else ever leaves the library: the
// reference throws from deep inside expressions, and mirroring that keeps the code one-to-one.
struct JinjaError {
  std::string msg;
};
[[noreturn]] void fail(std::string msg);

// ---- Text helpers (UTF-8 inside, JavaScript UTF-16 semantics where the reference shows them).
// Invalid UTF-8 becomes U+FFFD through utf8_sanitize (core/utf8.h), as node decodes files.
// Decodes the code point at s[i] (s is valid UTF-8) and advances i.
uint32_t next_code_point(std::string_view s, size_t& i);
// JavaScript's \s / String.prototype.trim set: WhiteSpace plus LineTerminator.
bool is_js_space(uint32_t cp);
size_t js_space_len_at(std::string_view s, size_t i);  // bytes of the space at i, or 0
std::string_view js_trim(std::string_view s, bool left, bool right);
int64_t utf16_length(std::string_view s);
std::vector<std::string> code_points(std::string_view s);  // Array.from(str)
std::string js_to_upper(std::string_view s);
std::string js_to_lower(std::string_view s);
int compare_utf16(std::string_view a, std::string_view b);
// ECMAScript Number::toString(10), and toFixed(1) for integral floats.
std::string js_number_to_string(double v);
double js_parse_int(std::string_view s);    // parseInt(s, 10), NaN when no digits
double js_parse_float(std::string_view s);  // parseFloat(s)
double js_string_to_number(std::string_view s);  // Number(s)

// ---- Values.
enum class Kind : uint8_t { Undefined, Null, Bool, Int, Float, String, Array, Object, Function };
enum class ObjKind : uint8_t { Plain, Kwargs, Namespace };

struct ArrayData;
struct ObjectData;
struct FunctionData;
struct Env;
using EnvPtr = std::shared_ptr<Env>;

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  double num = 0;  // Int and Float both hold a double, as in JavaScript
  std::string str;
  std::shared_ptr<ArrayData> arr;
  std::shared_ptr<ObjectData> obj;
  std::shared_ptr<FunctionData> fn;

  static Value undefined() { return Value(); }
  static Value null();
  static Value boolean(bool v);
  static Value integer(double v);
  static Value floating(double v);
  static Value string(std::string s);
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  bool is_plain_object() const;  // ObjectValue or KeywordArgumentsValue (not namespace)
  bool is_namespace() const;
  bool is_kwargs() const;
};

struct ArrayData {
  std::vector<Value> items;
  bool tuple = false;
  int depth = 1;
};

struct ObjectData {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, like a JS Map
  std::unordered_map<std::string, size_t> index;
  ObjKind sub = ObjKind::Plain;
  int depth = 1;
  const Value* get(const std::string& key) const;
  void set(const std::string& key, Value v);  // keeps the position of an existing key
};

class Interp;
using NativeFn = std::function<Value(Interp&, std::vector<Value>& args, const EnvPtr& scope)>;
struct FunctionData {
  std::string name;
  NativeFn fn;
};

constexpr int k_max_value_depth = 256;  // nesting of arrays/objects; bounds every recursion

Value make_array(std::vector<Value> items, bool tuple = false);
Value make_object(std::vector<std::pair<std::string, Value>> entries, ObjKind sub = ObjKind::Plain);
Value make_function(std::string name, NativeFn fn);
const char* type_name(const Value& v);  // the reference's type names, for error messages
bool truthy(const Value& v);
// RuntimeValue.toString() and value.toString() (used by ~ and +); budget bounds the size.
std::string to_output_string(const Value& v, int64_t budget);
std::string js_value_string(const Value& v, int64_t budget);
struct JsonOptions {
  int64_t indent = 0;
  bool ensure_ascii = false;
  bool have_separators = false;
  std::string item_sep, key_sep;
  bool sort_keys = false;
};
// toJSON; budget (bytes) bounds the output, and an error is raised past it.
std::string to_json(const Value& v, const JsonOptions& o, bool undefined_to_null, int64_t budget);
bool loose_equal(const Value& a, const Value& b);   // JavaScript ==
bool strict_equal(const Value& a, const Value& b);  // JavaScript === on .value
Value from_json(const nlohmann::ordered_json& j, int depth = 0);

// ---- Tokens and syntax tree.
enum class Tok : uint8_t {
  Text, Number, String, Ident, Equals, OpenParen, CloseParen, OpenStatement, CloseStatement,
  OpenExpression, CloseExpression, OpenSquare, CloseSquare, OpenCurly, CloseCurly, Comma, Dot,
  Colon, Pipe, Additive, Multiplicative, Power, Comparison, Unary, Comment, Eof
};
struct Token {
  Tok type;
  std::string value;
};
// Preprocesses (trim_blocks, lstrip_blocks, generation tags) and tokenizes like the reference.
std::vector<Token> tokenize(std::string_view source);

enum class NodeKind : uint8_t {
  Str, Comment, Set, If, For, Break, Continue, Macro, CallStmt, FilterStmt, IntLit, FloatLit,
  ArrayLit, TupleLit, ObjectLit, Ident, Call, Member, Slice, Unary, Binary, Filter, Test,
  Select, Ternary, KwArg, Spread, KwSpread
};
struct Node;
using NodePtr = std::unique_ptr<Node>;
// One node type for the whole tree; which fields a kind uses is listed beside each kind in
// jinja_parser.cpp.
struct Node {
  NodeKind kind;
  std::string str;
  double num = 0;
  bool flag = false;
  bool uses_kwargs = false, uses_varargs = false;  // macros and call blocks
  NodePtr x, y, z;
  std::vector<NodePtr> a, b;
};
std::vector<NodePtr> parse_tokens(const std::vector<Token>& tokens, int max_depth);

// ---- Evaluation.
struct Env {
  EnvPtr parent;
  std::vector<std::pair<std::string, Value>> vars;
  Value* find_local(const std::string& name);
  void set(const std::string& name, Value v);
};

class Interp {
 public:
  Interp(const Limits& limits, const RenderOptions& options);
  ~Interp();
  std::string run(const std::vector<NodePtr>& program, const nlohmann::ordered_json& context);

  Value evaluate(const Node* n, const EnvPtr& env);
  std::string eval_block(const std::vector<NodePtr>& body, const EnvPtr& env);
  Value lookup(const std::string& name, const EnvPtr& env);
  // Work accounting: every loop iteration, created byte and element is charged so that no
  // template can run for long, whatever it does.
  void charge(int64_t units);
  void check_string(size_t bytes);  // one string's size against the output limit
  void count_iterations(int64_t n);
  void register_namespace(const Value& ns) { namespaces_.push_back(ns.obj); }
  int64_t max_output() const { return limits_.max_output_bytes; }
  Value make_range(const std::vector<Value>& args);
  const RenderOptions& options() const { return options_; }

  std::pair<std::vector<Value>, std::vector<std::pair<std::string, Value>>> eval_args(
      const std::vector<NodePtr>& args, const EnvPtr& env);
  Value apply_filter(Value operand, const Node* filter, const EnvPtr& env);
  bool apply_test(const std::string& name, const Value& operand, const Value* arg);
  Value get_member(const Value& object, const Value& property);

 private:
  Value eval_binary(const Node* n, const EnvPtr& env);
  Value eval_member(const Node* n, const EnvPtr& env);
  Value eval_call(const Node* n, const EnvPtr& env);
  Value eval_set(const Node* n, const EnvPtr& env);
  std::string eval_for(const Node* n, const EnvPtr& env);
  Value eval_macro(const Node* n, const EnvPtr& env);
  Value eval_call_stmt(const Node* n, const EnvPtr& env);
  void bind_macro_args(const std::string& display, const std::vector<NodePtr>& params,
                       bool uses_kwargs, bool uses_varargs, std::vector<Value> args,
                       const EnvPtr& scope);
  Value call_function(const Value& fn, std::vector<Value>& args, const EnvPtr& scope);

  Limits limits_;
  RenderOptions options_;
  int64_t iterations_ = 0;
  int64_t work_ = 0;
  int64_t work_budget_ = 0;
  int depth_ = 0;        // evaluation nesting
  int call_depth_ = 0;   // macro calls
  std::vector<std::shared_ptr<ObjectData>> namespaces_;
  Value namespace_fn_;
  friend struct DepthGuard;
  friend struct CallGuard;
};

// Built-in member functions of strings and objects (StringValue/ObjectValue.builtins).
Value string_builtin(Interp& in, const Value& s, const std::string& name);
Value object_builtin(Interp& in, const Value& o, const std::string& name);
Value make_namespace_function();
void add_globals(Interp& in, Env& root);
int compare_values(const Value& a, const Value& b, bool case_sensitive);

}  // namespace slm::jinja::detail
