// `slm tokenize` (text on stdin -> ids) and `slm tokenize --decode` (ids on stdin -> text).
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <sstream>

#include "app/model_files.h"
#include "commands.h"

namespace slm::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  bool add_special = false;
  bool parse_special = false;
  bool decode = false;
};

int run_tokenize(const TokenizeOptions& o) {
  auto meta = load_model_meta(o.model, o.tokenizer);
  if (!meta.ok()) return fail(meta.status());
  if (!meta->tokenizer) return fail(error("%s: the model has no tokenizer", o.model.c_str()));
  const Tokenizer& tok = *meta->tokenizer;
  std::string input = read_stdin();
  if (!o.decode) {
    std::vector<int32_t> ids = tok.encode(input, o.add_special, o.parse_special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    line += '\n';
    return std::fwrite(line.data(), 1, line.size(), stdout) == line.size() ? 0 : 1;
  }
  std::vector<int32_t> ids;
  std::istringstream in(input);
  std::string word;
  while (in >> word) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(word.c_str(), &end, 10);
    if (errno || *end || v < 0 || v >= tok.vocab_size()) {
      return fail(error("--decode: '%s' is not a token id in [0, %lld)", word.c_str(),
                        (long long)tok.vocab_size()));
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  std::string text = tok.decode(ids, o.parse_special);
  return std::fwrite(text.data(), 1, text.size(), stdout) == text.size() ? 0 : 1;
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "tokenize",
      "Tokenize the exact bytes on stdin and print the ids space-separated on one line "
      "(no BOS/EOS, no special-token parsing unless asked); --decode goes the other way");
  sub->add_option("MODEL", o->model, "GGUF file (vocab-only is enough), HF directory, or llama2.c checkpoint")
      ->required();
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin");
  sub->add_flag("--add-special", o->add_special, "add BOS/EOS as the model's rules say");
  sub->add_flag("--parse-special", o->parse_special,
                "recognise special-token text such as <|im_start|> (with --decode: print control tokens)");
  sub->add_flag("--decode", o->decode, "read ids from stdin and print the text");
  sub->callback([o] { exit_code() = run_tokenize(*o); });
}
SLM_REGISTER_COMMAND(add_tokenize, 40);

}  // namespace slm::cli
