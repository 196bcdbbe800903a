/* slm C API: load a model, tokenize, apply its chat template and generate text with a token
 * callback, from C or any language with a C FFI. C99; no C++ exception ever crosses it. */
#ifndef SLM_SLM_H
#define SLM_SLM_H

#include <stddef.h>
#include <stdint.h>

/* Bumped on every incompatible change of this header. Compare with slm_api_version() at run
 * time to detect a library built from another header. */
#define SLM_API_VERSION 1

/* Exported from libslm.so, whose other symbols are hidden. */
#if defined(__GNUC__)
#define SLM_API __attribute__((visibility("default")))
#else
#define SLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Every function that can fail returns one of these. The message of the last failure on the
 * calling thread is slm_last_error(). */
typedef enum slm_status {
  SLM_OK = 0,
  SLM_ERR_INVALID_ARGUMENT = 1, /* a NULL handle/pointer or a parameter out of range */
  SLM_ERR_LOAD = 2,             /* the model (or its tokenizer) could not be loaded */
  SLM_ERR_BUFFER_TOO_SMALL = 3, /* the output did not fit; the size needed was stored */
  SLM_ERR_GENERATE = 4,         /* generation failed (e.g. the prompt does not fit the context) */
  SLM_ERR_TEMPLATE = 5,         /* the model has no chat template, or rendering it failed */
  SLM_ERR_OUT_OF_MEMORY = 6,
  SLM_ERR_INTERNAL = 7          /* an unexpected failure inside the library */
} slm_status;

/* Why generation ended. */
typedef enum slm_finish_reason {
  SLM_FINISH_STOP = 0,     /* a stop string matched */
  SLM_FINISH_LENGTH = 1,   /* max_tokens reached, or the context is full */
  SLM_FINISH_EOS = 2,      /* the model ended its text */
  SLM_FINISH_CANCELLED = 3 /* the token callback returned nonzero */
} slm_finish_reason;

/* Opaque handles. A model is immutable once loaded and may be shared by several contexts
 * (also from several threads); a context (KV cache and scratch) is used by one thread at a
 * time. */
typedef struct slm_model slm_model;
typedef struct slm_context slm_context;

/* SLM_API_VERSION of the library actually linked. */
SLM_API int slm_api_version(void);
/* The message of the last failed call on this thread ("" if none). Valid until the next call
 * into the library from this thread. Never NULL. */
SLM_API const char* slm_last_error(void);
/* A constant name for a status ("ok", "invalid argument", ...; "unknown status" for any other
 * value, which is why it takes an int). Never NULL. */
SLM_API const char* slm_status_name(int status);

/* ---- models ------------------------------------------------------------------------------ */

typedef struct slm_model_params {
  /* llama2.c tokenizer.bin; required for llama2.c checkpoints, ignored otherwise. */
  const char* tokenizer_path;
} slm_model_params;

SLM_API slm_model_params slm_model_default_params(void);

/* path: a GGUF file, a Hugging Face model directory or a llama2.c checkpoint. params may be
 * NULL (defaults). On success *out owns the model (free it with slm_model_free); on failure
 * *out is NULL. A model without a tokenizer is an error. */
SLM_API slm_status slm_model_load(const char* path, const slm_model_params* params,
                                  slm_model** out);
/* NULL is allowed. Free every context of the model first. */
SLM_API void slm_model_free(slm_model* model);

/* -1 when model is NULL or the model has no such token. */
SLM_API int32_t slm_model_n_vocab(const slm_model* model);
SLM_API int64_t slm_model_n_ctx_train(const slm_model* model);
SLM_API int32_t slm_model_bos(const slm_model* model);
SLM_API int32_t slm_model_eos(const slm_model* model);

/* ---- text and tokens --------------------------------------------------------------------- */

/* Tokenizes text_len bytes of text (need not be NUL-terminated). add_special: add BOS/EOS as
 * the model does; parse_special: recognise special-token text such as "<|im_end|>".
 * *n_ids always receives the number of tokens. Size query: ids NULL and capacity 0 -> SLM_OK.
 * Otherwise, capacity < *n_ids -> SLM_ERR_BUFFER_TOO_SMALL (ids is left untouched). */
SLM_API slm_status slm_tokenize(const slm_model* model, const char* text, size_t text_len,
                                int add_special, int parse_special, int32_t* ids,
                                size_t capacity, size_t* n_ids);

/* Text of n_ids tokens (whole-sequence rules, e.g. no leading space from SentencePiece's first
 * word). render_special: include control tokens' text. *len always receives the text length in
 * bytes (without the terminating NUL). The text plus a NUL is written when capacity >= *len + 1;
 * else SLM_ERR_BUFFER_TOO_SMALL (size query: buf NULL, capacity 0 -> SLM_OK). */
SLM_API slm_status slm_detokenize(const slm_model* model, const int32_t* ids, size_t n_ids,
                                  int render_special, char* buf, size_t capacity, size_t* len);

typedef struct slm_chat_message {
  const char* role;    /* "system", "user", "assistant", ... */
  const char* content;
} slm_chat_message;

/* Renders messages with the model's own chat template (the exact prompt text the model
 * expects). add_generation_prompt: end with the assistant turn's opening. Output as for
 * slm_detokenize. SLM_ERR_TEMPLATE when the model has no template or the template fails. */
SLM_API slm_status slm_apply_chat_template(const slm_model* model,
                                           const slm_chat_message* messages, size_t n_messages,
                                           int add_generation_prompt, char* buf,
                                           size_t capacity, size_t* len);

/* ---- contexts and generation ------------------------------------------------------------- */

typedef struct slm_context_params {
  int64_t n_ctx;     /* positions in the KV cache; 0: the model's training context, <= 4096 */
  int32_t n_threads; /* 0: all cores */
} slm_context_params;

SLM_API slm_context_params slm_context_default_params(void);

/* The KV cache is allocated here, once. params may be NULL (defaults). */
SLM_API slm_status slm_context_create(const slm_model* model, const slm_context_params* params,
                                      slm_context** out);
/* NULL is allowed. */
SLM_API void slm_context_free(slm_context* ctx);
SLM_API int64_t slm_context_n_ctx(const slm_context* ctx);

#define SLM_SEED_RANDOM UINT64_MAX

typedef struct slm_generate_params {
  int32_t max_tokens;        /* < 0: until end of text or a full context (default 256) */
  float temperature;         /* 0: greedy (default 0.8) */
  int32_t top_k;             /* <= 0: off (default 40) */
  float top_p;               /* (0, 1]; 1: off (default 0.95) */
  float min_p;               /* [0, 1]; 0: off (default 0.05) */
  float repeat_penalty;      /* > 0; 1: off (default 1) */
  uint64_t seed;             /* SLM_SEED_RANDOM (default): a random seed */
  const char* const* stop;   /* stop strings (not emitted); may be NULL when n_stop is 0 */
  size_t n_stop;
  int add_special;           /* add BOS etc. to the prompt as the model does (default 1) */
  int parse_special;         /* recognise special-token text in the prompt (default 1) */
} slm_generate_params;

SLM_API slm_generate_params slm_generate_default_params(void);

/* Called once per generated token, in order, with the text that became final at that token:
 * possibly empty (half a UTF-8 character, or text held back because it may begin a stop
 * string). Held-back text released only at the end goes to the last token if its call is
 * still due, else to one more call with token -1. The concatenated pieces are exactly the
 * generated text (without a matched stop string and what follows it). The end-of-text
 * token itself is not reported. piece is not NUL-terminated and is valid only during the call.
 * Return 0 to continue, nonzero to stop (finish reason SLM_FINISH_CANCELLED). */
typedef int (*slm_token_callback)(int32_t token, const char* piece, size_t piece_len,
                                  void* user_data);

typedef struct slm_generate_result {
  int64_t n_prompt;    /* prompt tokens */
  int64_t n_generated; /* sampled tokens, including a final end-of-text token */
  slm_finish_reason finish_reason;
  double prompt_ms;    /* prompt processing time */
  double gen_ms;       /* generation time */
  uint64_t seed;       /* the seed used (the random one if SLM_SEED_RANDOM) */
} slm_generate_result;

/* Continues prompt (a NUL-terminated string) in ctx, which starts empty on every call.
 * params may be NULL (defaults), callback may be NULL, result may be NULL. */
SLM_API slm_status slm_generate(slm_context* ctx, const char* prompt,
                                const slm_generate_params* params, slm_token_callback callback,
                                void* user_data, slm_generate_result* result);

#ifdef __cplusplus
}
#endif

#endif /* SLM_SLM_H */
