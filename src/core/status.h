// Status and Expected<T>: how every libslm function reports failure.
// Errors from untrusted input (files, requests) are values, never aborts or exceptions.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <variant>

namespace slm {

// A success, or an error message that names the file / field / offset that failed.
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status error(std::string msg) {
    Status s;
    s.failed_ = true;
    s.msg_ = std::move(msg);
    return s;
  }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& message() const { return msg_; }

  // Prefix context, e.g. s.with_context("model.gguf") -> "model.gguf: <msg>".
  Status with_context(const std::string& ctx) const {
    if (ok()) return *this;
    return error(ctx + ": " + msg_);
  }

 private:
  bool failed_ = false;
  std::string msg_;
};

// printf-style error construction: return error("tensor '%s': %lld dims", name, n);
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
Status error(const char* fmt, ...);

// A value or an error Status.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}              // NOLINT(implicit)
  Expected(Status status) : v_(std::move(status)) {}       // NOLINT(implicit), must be an error
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status() : std::get<1>(v_); }
  const std::string& message() const {
    static const std::string empty;
    return ok() ? empty : std::get<1>(v_).message();
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace slm

#define SLM_CONCAT_INNER(a, b) a##b
#define SLM_CONCAT(a, b) SLM_CONCAT_INNER(a, b)

// Return the Status if it is an error.
#define SLM_TRY(expr)                    \
  do {                                   \
    ::slm::Status slm_st_ = (expr);      \
    if (!slm_st_.ok()) return slm_st_;   \
  } while (0)

// SLM_ASSIGN_OR_RETURN(auto x, f()); declares x from an Expected or returns its error.
#define SLM_ASSIGN_OR_RETURN(decl, expr) \
  SLM_ASSIGN_OR_RETURN_IMPL(SLM_CONCAT(slm_ex_, __LINE__), decl, expr)
#define SLM_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  decl = std::move(tmp).value()
