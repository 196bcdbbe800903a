/* Example use of the slm C API: load a model, continue a prompt, stream the text through the
 * token callback. Build: see docs/DEPLOY.md (cc -std=c99 generate.c -lslm). */
#include <slm/slm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int on_token(int32_t token, const char* piece, size_t piece_len, void* user_data) {
  long* count = (long*)user_data;
  (void)token;
  fwrite(piece, 1, piece_len, stdout);
  fflush(stdout);
  ++*count;
  return 0; /* nonzero would stop generation here */
}

static void usage(void) {
  fprintf(stderr,
          "usage: slm_c_example [--tokenizer tokenizer.bin] [-n N] [--temp T] [--seed S] "
          "MODEL PROMPT\n");
}

int main(int argc, char** argv) {
  const char* model_path = NULL;
  const char* prompt = NULL;
  slm_model_params mp = slm_model_default_params();
  slm_generate_params gp = slm_generate_default_params();
  slm_model* model = NULL;
  slm_context* ctx = NULL;
  slm_generate_result result;
  slm_status st;
  long count = 0;
  int i;

  gp.max_tokens = 64;
  gp.temperature = 0.0f; /* greedy: the same text on every run */
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
      mp.tokenizer_path = argv[++i];
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      gp.max_tokens = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--temp") == 0 && i + 1 < argc) {
      gp.temperature = (float)atof(argv[++i]);
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      gp.seed = strtoull(argv[++i], NULL, 10);
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      usage();
      return 2;
    } else if (model_path == NULL) {
      model_path = argv[i];
    } else if (prompt == NULL) {
      prompt = argv[i];
    } else {
      usage();
      return 2;
    }
  }
  if (model_path == NULL || prompt == NULL) {
    usage();
    return 2;
  }
  if (slm_api_version() != SLM_API_VERSION) {
    fprintf(stderr, "libslm has C API version %d, this program was built for %d\n",
            slm_api_version(), SLM_API_VERSION);
    return 1;
  }

  st = slm_model_load(model_path, &mp, &model);
  if (st != SLM_OK) {
    fprintf(stderr, "slm_c_example: %s: %s\n", slm_status_name(st), slm_last_error());
    return 1;
  }
  st = slm_context_create(model, NULL, &ctx);
  if (st == SLM_OK) st = slm_generate(ctx, prompt, &gp, on_token, &count, &result);
  if (st != SLM_OK) {
    fprintf(stderr, "slm_c_example: %s: %s\n", slm_status_name(st), slm_last_error());
    slm_context_free(ctx);
    slm_model_free(model);
    return 1;
  }
  printf("\n");
  fprintf(stderr, "[%lld prompt tokens, %lld generated, %ld callbacks, finish %d, %.1f ms]\n",
          (long long)result.n_prompt, (long long)result.n_generated, count,
          (int)result.finish_reason, result.prompt_ms + result.gen_ms);
  slm_context_free(ctx);
  slm_model_free(model);
  return 0;
}
