// Jinja parser: recursive descent over the reference's grammar and precedence (tests bind
// tighter than *, `a if c` without else selects), with a bound on nesting depth.
//
// Node fields by kind: Str str | IntLit/FloatLit num | ArrayLit/TupleLit a=items |
// ObjectLit a=keys b=values | Ident str | Call x=callee a=args | Member x=object y=property
// flag=computed | Slice x,y,z=start,stop,step | Unary str=op x | Binary str=op x y |
// Filter x=operand y=filter | Test x=operand str=name flag=negate | Select x=value y=test |
// Ternary x=cond y=then z=else | KwArg str=key x=value | Spread/KwSpread x |
// Set x=target y=value a=body | If x=test a=body b=else | For x=target y=iterable a=body b=else |
// Macro str=name a=params b=body | CallStmt x=call a=caller params b=body | FilterStmt x a=body
#include "template/jinja_internal.h"

namespace slm::jinja::detail {

namespace {

NodePtr node(NodeKind k) {
  auto n = std::make_unique<Node>();
  n->kind = k;
  return n;
}

class Parser {
 public:
  Parser(const std::vector<Token>& t, int max_depth) : t_(t), max_depth_(max_depth) {}

  std::vector<NodePtr> run() {
    std::vector<NodePtr> body;
    while (cur_ < t_.size()) body.push_back(parse_any());
    return body;
  }

 private:
  struct Guard {
    Parser& p;
    explicit Guard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.max_depth_) fail("template is nested too deeply");
    }
    ~Guard() { --p.depth_; }
  };

  const Token& tok(size_t k = 0) const {
    static const Token eof{Tok::Eof, ""};
    return cur_ + k < t_.size() ? t_[cur_ + k] : eof;
  }
  bool is(Tok a) const { return tok().type == a; }
  bool is_ident(std::string_view name, size_t k = 0) const {
    return tok(k).type == Tok::Ident && tok(k).value == name;
  }
  bool is_statement(std::initializer_list<std::string_view> names) const {
    if (tok().type != Tok::OpenStatement || tok(1).type != Tok::Ident) return false;
    for (auto n : names) {
      if (tok(1).value == n) return true;
    }
    return false;
  }
  const Token& expect(Tok type, const char* what) {
    if (tok().type != type) fail(std::string("Parser Error: ") + what);
    return t_[cur_++];
  }
  void expect_ident(const char* name) {
    if (!is_ident(name)) fail(std::string("Expected ") + name);
    ++cur_;
  }
  void expect_end(const char* name) {
    expect(Tok::OpenStatement, "Expected {% token");
    expect_ident(name);
    expect(Tok::CloseStatement, "Expected %} token");
  }

  NodePtr parse_any() {
    Guard g(*this);
    switch (tok().type) {
      case Tok::Comment: {
        ++cur_;
        return node(NodeKind::Comment);
      }
      case Tok::Text: {
        auto n = node(NodeKind::Str);
        n->str = t_[cur_++].value;
        return n;
      }
      case Tok::OpenStatement: return parse_statement();
      case Tok::OpenExpression: {
        ++cur_;
        NodePtr e = parse_expression();
        expect(Tok::CloseExpression, "Expected closing expression token");
        return e;
      }
      default: fail("Unexpected token in template");
    }
  }

  void parse_body_until(std::vector<NodePtr>& out, std::initializer_list<std::string_view> names) {
    while (!is_statement(names)) {
      if (cur_ >= t_.size()) fail("Unexpected end of template: missing {% " + std::string(*names.begin()) + " %}");
      out.push_back(parse_any());
    }
  }

  NodePtr parse_statement() {
    expect(Tok::OpenStatement, "Expected opening statement token");
    if (!is(Tok::Ident)) fail("Unknown statement");
    std::string name = tok().value;
    ++cur_;
    if (name == "set") return parse_set();
    if (name == "if") {
      NodePtr n = parse_if();
      expect_end("endif");
      return n;
    }
    if (name == "macro") {
      auto n = node(NodeKind::Macro);
      NodePtr id = parse_primary();
      if (id->kind != NodeKind::Ident) fail("Expected identifier following macro statement");
      n->str = id->str;
      n->a = parse_args(true);
      expect(Tok::CloseStatement, "Expected closing statement token");
      parse_body_until(n->b, {"endmacro"});
      expect_end("endmacro");
      scan_special_args(*n, n->a, n->b);
      return n;
    }
    if (name == "for") {
      NodePtr n = parse_for();
      expect_end("endfor");
      return n;
    }
    if (name == "call") {
      auto n = node(NodeKind::CallStmt);
      if (is(Tok::OpenParen)) n->a = parse_args(true);
      NodePtr callee = parse_primary();
      if (callee->kind != NodeKind::Ident) fail("Expected identifier following call statement");
      auto call = node(NodeKind::Call);
      call->x = std::move(callee);
      call->a = parse_args(false);
      n->x = std::move(call);
      expect(Tok::CloseStatement, "Expected closing statement token");
      parse_body_until(n->b, {"endcall"});
      expect_end("endcall");
      scan_special_args(*n, n->a, n->b);
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(Tok::CloseStatement, "Expected closing statement token");
      return node(name == "break" ? NodeKind::Break : NodeKind::Continue);
    }
    if (name == "filter") {
      auto n = node(NodeKind::FilterStmt);
      NodePtr f = parse_primary();
      if (f->kind == NodeKind::Ident && is(Tok::OpenParen)) f = parse_call(std::move(f));
      n->x = std::move(f);
      expect(Tok::CloseStatement, "Expected closing statement token");
      parse_body_until(n->a, {"endfilter"});
      expect_end("endfilter");
      return n;
    }
    fail("Unknown statement type: " + name);
  }

  NodePtr parse_set() {
    auto n = node(NodeKind::Set);
    n->x = parse_sequence(false);
    if (is(Tok::Equals)) {
      ++cur_;
      n->y = parse_sequence(false);
    } else {
      expect(Tok::CloseStatement, "Expected %} token");
      parse_body_until(n->a, {"endset"});
      expect(Tok::OpenStatement, "Expected {% token");
      expect_ident("endset");
    }
    expect(Tok::CloseStatement, "Expected closing statement token");
    return n;
  }

  NodePtr parse_if() {
    Guard g(*this);
    auto n = node(NodeKind::If);
    n->x = parse_expression();
    expect(Tok::CloseStatement, "Expected closing statement token");
    parse_body_until(n->a, {"elif", "else", "endif"});
    if (is_statement({"elif"})) {
      cur_ += 2;
      n->b.push_back(parse_if());
    } else if (is_statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStatement, "Expected closing statement token");
      parse_body_until(n->b, {"endif"});
    }
    return n;
  }

  NodePtr parse_for() {
    auto n = node(NodeKind::For);
    n->x = parse_sequence(true);
    if (n->x->kind != NodeKind::Ident && n->x->kind != NodeKind::TupleLit) {
      fail("Expected identifier/tuple for the loop variable");
    }
    if (!is_ident("in")) fail("Expected `in` keyword following loop variable");
    ++cur_;
    n->y = parse_expression();
    expect(Tok::CloseStatement, "Expected closing statement token");
    parse_body_until(n->a, {"endfor", "else"});
    if (is_statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStatement, "Expected closing statement token");
      parse_body_until(n->b, {"endfor"});
    }
    return n;
  }

  NodePtr parse_sequence(bool primary) {
    NodePtr first = primary ? parse_primary() : parse_expression();
    if (!is(Tok::Comma)) return first;
    auto tuple = node(NodeKind::TupleLit);
    tuple->a.push_back(std::move(first));
    while (true) {
      ++cur_;
      tuple->a.push_back(primary ? parse_primary() : parse_expression());
      if (!is(Tok::Comma)) break;
    }
    return tuple;
  }

  NodePtr parse_expression() {
    Guard g(*this);
    NodePtr a = parse_or();
    if (!is_ident("if")) return a;
    ++cur_;
    NodePtr test = parse_or();
    if (is_ident("else")) {
      ++cur_;
      auto n = node(NodeKind::Ternary);
      n->x = std::move(test);
      n->y = std::move(a);
      n->z = parse_expression();
      return n;
    }
    auto n = node(NodeKind::Select);
    n->x = std::move(a);
    n->y = std::move(test);
    return n;
  }

  NodePtr binary(std::string op, NodePtr l, NodePtr r) {
    auto n = node(NodeKind::Binary);
    n->str = std::move(op);
    n->x = std::move(l);
    n->y = std::move(r);
    return n;
  }

  NodePtr parse_or() {
    NodePtr left = parse_and();
    while (is_ident("or")) {
      ++cur_;
      left = binary("or", std::move(left), parse_and());
    }
    return left;
  }
  NodePtr parse_and() {
    NodePtr left = parse_not();
    while (is_ident("and")) {
      ++cur_;
      left = binary("and", std::move(left), parse_not());
    }
    return left;
  }
  NodePtr parse_not() {
    Guard g(*this);
    NodePtr right;
    while (is_ident("not")) {  // the reference keeps only the last of `not a not b`
      ++cur_;
      auto n = node(NodeKind::Unary);
      n->str = "not";
      n->x = parse_not();
      right = std::move(n);
    }
    return right ? std::move(right) : parse_comparison();
  }
  NodePtr parse_comparison() {
    NodePtr left = parse_additive();
    while (true) {
      std::string op;
      if (is_ident("not") && is_ident("in", 1)) {
        op = "not in";
        cur_ += 2;
      } else if (is_ident("in")) {
        op = "in";
        ++cur_;
      } else if (is(Tok::Comparison)) {
        op = t_[cur_++].value;
      } else {
        break;
      }
      left = binary(op, std::move(left), parse_additive());
    }
    return left;
  }
  NodePtr parse_additive() {
    NodePtr left = parse_multiplicative();
    while (is(Tok::Additive)) {
      std::string op = t_[cur_++].value;
      left = binary(op, std::move(left), parse_multiplicative());
    }
    return left;
  }
  NodePtr parse_multiplicative() {
    NodePtr left = parse_power();
    while (is(Tok::Multiplicative)) {
      std::string op = t_[cur_++].value;
      left = binary(op, std::move(left), parse_power());
    }
    return left;
  }
  NodePtr parse_power() {
    NodePtr left = parse_test();
    while (is(Tok::Power)) {
      ++cur_;
      left = binary("**", std::move(left), parse_test());
    }
    return left;
  }
  NodePtr parse_test() {
    NodePtr operand = parse_filter();
    while (is_ident("is")) {
      ++cur_;
      bool negate = is_ident("not");
      if (negate) ++cur_;
      NodePtr name = parse_primary();
      if (name->kind != NodeKind::Ident) fail("Expected identifier for the test");
      auto n = node(NodeKind::Test);
      n->x = std::move(operand);
      n->str = name->str;
      n->flag = negate;
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr parse_filter() {
    NodePtr operand = parse_unary();
    while (is(Tok::Pipe)) {
      ++cur_;
      NodePtr f = parse_primary();
      if (f->kind != NodeKind::Ident) fail("Expected identifier for the filter");
      if (is(Tok::OpenParen)) f = parse_call(std::move(f));
      auto n = node(NodeKind::Filter);
      n->x = std::move(operand);
      n->y = std::move(f);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr parse_unary() {
    Guard g(*this);
    const Token& t = tok();
    if ((t.type == Tok::Unary || t.type == Tok::Additive) && (t.value == "-" || t.value == "+")) {
      auto n = node(NodeKind::Unary);
      n->str = t.value;
      ++cur_;
      n->x = parse_unary();
      return n;
    }
    NodePtr member = parse_member(parse_primary());
    if (is(Tok::OpenParen)) return parse_call(std::move(member));
    return member;
  }
  NodePtr parse_call(NodePtr callee) {
    Guard g(*this);
    auto n = node(NodeKind::Call);
    n->x = std::move(callee);
    n->a = parse_args(false);
    NodePtr e = parse_member(std::move(n));
    if (is(Tok::OpenParen)) e = parse_call(std::move(e));
    return e;
  }

  std::vector<NodePtr> parse_args(bool parameters) {
    expect(Tok::OpenParen, "Expected opening parenthesis for arguments list");
    std::vector<NodePtr> args;
    std::vector<std::string> names;
    bool saw_keyword = false, saw_spread = false;
    while (!is(Tok::CloseParen)) {
      bool kw_spread = is(Tok::Power);
      bool pos_spread = is(Tok::Multiplicative) && tok().value == "*";
      if (parameters && (kw_spread || pos_spread)) fail("Argument unpacking is not allowed in parameter declarations");
      if (kw_spread) {
        ++cur_;
        auto n = node(NodeKind::KwSpread);
        n->x = parse_expression();
        args.push_back(std::move(n));
        if (is(Tok::Comma)) ++cur_;
        if (!is(Tok::CloseParen)) fail("`**` must be applied to the final argument");
        break;
      }
      NodePtr arg;
      if (pos_spread) {
        if (saw_spread) fail("Only one `*` argument unpacking is allowed");
        saw_spread = true;
        ++cur_;
        arg = node(NodeKind::Spread);
        arg->x = parse_expression();
      } else {
        arg = parse_expression();
        if (is(Tok::Equals)) {
          ++cur_;
          if (arg->kind != NodeKind::Ident) fail("Expected identifier for keyword argument");
          auto kw = node(NodeKind::KwArg);
          kw->str = arg->str;
          kw->x = parse_expression();
          arg = std::move(kw);
        }
        if (parameters) {
          if (arg->kind != NodeKind::Ident && arg->kind != NodeKind::KwArg) fail("Expected identifier for parameter declaration");
          for (const auto& nm : names) {
            if (nm == arg->str) fail("Duplicate parameter name: " + nm);
          }
          names.push_back(arg->str);
        }
        if (arg->kind == NodeKind::KwArg) {
          saw_keyword = true;
        } else if (saw_keyword) {
          fail("Positional arguments must come before keyword arguments");
        } else if (saw_spread) {
          fail("Positional arguments must not follow `*` argument unpacking");
        }
      }
      args.push_back(std::move(arg));
      if (is(Tok::Comma)) ++cur_;
    }
    expect(Tok::CloseParen, "Expected closing parenthesis for arguments list");
    return args;
  }

  NodePtr parse_subscript() {
    std::vector<NodePtr> slices;
    bool is_slice = false;
    while (!is(Tok::CloseSquare)) {
      if (cur_ >= t_.size()) fail("Unexpected end of template in subscript");
      if (is(Tok::Colon)) {
        slices.push_back(nullptr);
        ++cur_;
        is_slice = true;
      } else {
        slices.push_back(parse_expression());
        if (is(Tok::Colon)) {
          ++cur_;
          is_slice = true;
        }
      }
    }
    if (slices.empty()) fail("Expected at least one argument for member/slice expression");
    if (!is_slice) return std::move(slices[0]);
    if (slices.size() > 3) fail("Expected 0-3 arguments for slice expression");
    auto n = node(NodeKind::Slice);
    n->x = std::move(slices[0]);
    if (slices.size() > 1) n->y = std::move(slices[1]);
    if (slices.size() > 2) n->z = std::move(slices[2]);
    return n;
  }

  NodePtr parse_member(NodePtr object) {
    while (is(Tok::Dot) || is(Tok::OpenSquare)) {
      bool computed = is(Tok::OpenSquare);
      ++cur_;
      auto n = node(NodeKind::Member);
      n->flag = computed;
      if (computed) {
        n->y = parse_subscript();
        expect(Tok::CloseSquare, "Expected closing square bracket");
      } else {
        n->y = parse_primary();
        if (n->y->kind != NodeKind::Ident && n->y->kind != NodeKind::IntLit) {
          fail("Expected identifier or integer following dot operator");
        }
      }
      n->x = std::move(object);
      object = std::move(n);
    }
    return object;
  }

  NodePtr parse_primary() {
    Guard g(*this);
    if (cur_ >= t_.size()) fail("Unexpected end of template");
    const Token& t = t_[cur_++];
    switch (t.type) {
      case Tok::Number: {
        bool is_float = t.value.find('.') != std::string::npos;
        auto n = node(is_float ? NodeKind::FloatLit : NodeKind::IntLit);
        n->num = js_string_to_number(t.value);
        return n;
      }
      case Tok::String: {
        auto n = node(NodeKind::Str);
        n->str = t.value;
        while (is(Tok::String)) n->str += t_[cur_++].value;
        return n;
      }
      case Tok::Ident: {
        auto n = node(NodeKind::Ident);
        n->str = t.value;
        return n;
      }
      case Tok::OpenParen: {
        NodePtr e = parse_sequence(false);
        expect(Tok::CloseParen, "Expected closing parenthesis");
        return e;
      }
      case Tok::OpenSquare: {
        auto n = node(NodeKind::ArrayLit);
        while (!is(Tok::CloseSquare)) {
          if (cur_ >= t_.size()) fail("Unexpected end of template in list");
          n->a.push_back(parse_expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      case Tok::OpenCurly: {
        auto n = node(NodeKind::ObjectLit);
        while (!is(Tok::CloseCurly)) {
          if (cur_ >= t_.size()) fail("Unexpected end of template in dict");
          n->a.push_back(parse_expression());
          expect(Tok::Colon, "Expected colon between key and value in object literal");
          n->b.push_back(parse_expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      default: fail("Unexpected token: " + t.value);
    }
  }

  // Whether a macro (or call block) body reads `kwargs` / `varargs` before declaring them,
  // which decides if extra arguments are collected or rejected.
  void scan_special_args(Node& owner, const std::vector<NodePtr>& params, const std::vector<NodePtr>& body) {
    std::vector<std::string> declared;
    for (const auto& p : params) declared.push_back(p->str);
    for (const auto& s : body) visit(s.get(), declared, owner);
  }
  void declare_target(const Node* t, std::vector<std::string>& declared) {
    if (!t) return;
    if (t->kind == NodeKind::Ident) declared.push_back(t->str);
    if (t->kind == NodeKind::TupleLit) {
      for (const auto& e : t->a) declare_target(e.get(), declared);
    }
  }
  void visit(const Node* n, std::vector<std::string>& declared, Node& owner) {
    if (!n) return;
    if (n->kind == NodeKind::Ident) {
      bool is_declared = false;
      for (const auto& d : declared) is_declared = is_declared || d == n->str;
      if (!is_declared && n->str == "kwargs") owner.uses_kwargs = true;
      if (!is_declared && n->str == "varargs") owner.uses_varargs = true;
      return;
    }
    if (n->kind == NodeKind::Set || n->kind == NodeKind::For) declare_target(n->x.get(), declared);
    if (n->kind == NodeKind::Macro || n->kind == NodeKind::CallStmt) {
      for (const auto& p : (n->kind == NodeKind::Macro ? n->a : n->a)) declared.push_back(p->str);
    }
    if (n->kind == NodeKind::Member && !n->flag) {
      visit(n->x.get(), declared, owner);
      return;
    }
    if (n->kind == NodeKind::Filter) {
      visit(n->x.get(), declared, owner);
      if (n->y && n->y->kind == NodeKind::Call) {
        for (const auto& e : n->y->a) visit(e.get(), declared, owner);
      }
      return;
    }
    if (n->kind == NodeKind::Set || n->kind == NodeKind::For) {
      visit(n->y.get(), declared, owner);
    } else {
      visit(n->x.get(), declared, owner);
      visit(n->y.get(), declared, owner);
    }
    visit(n->z.get(), declared, owner);
    for (const auto& e : n->a) {
      if (n->kind == NodeKind::Macro || n->kind == NodeKind::CallStmt) {
        if (e->kind == NodeKind::KwArg) visit(e->x.get(), declared, owner);
        continue;
      }
      visit(e.get(), declared, owner);
    }
    for (const auto& e : n->b) visit(e.get(), declared, owner);
  }

  const std::vector<Token>& t_;
  size_t cur_ = 0;
  int depth_ = 0;
  int max_depth_;
};

}  // namespace

std::vector<NodePtr> parse_tokens(const std::vector<Token>& tokens, int max_depth) {
  return Parser(tokens, max_depth).run();
}

}  // namespace slm::jinja::detail
