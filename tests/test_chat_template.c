/* Chat templates: the ChatML family (Qwen3's template of the bundled teacher, SmolLM2's with its
   default system prompt) and Llama 3's header format, recognised from their Jinja text and rendered
   as transformers' apply_chat_template renders them (tests/data/tokenizer/families/chat.jsonl,
   written by python3 tools/make_tokenizer_refs.py --chat); the ids and the learning mask; errors
   on templates we do not render. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

#define FAMILIES "tests/data/tokenizer/families"

static char *read_all(const char *path, size_t *len) {
    char *text = NULL;
    if (arwkv__read_file(path, &text, len) != ARWKV_OK) return NULL;
    return text;
}

static void print_escaped(const char *label, const char *s) {
    printf("      %s: \"", label);
    for (; *s; s++) {
        if (*s == '\n') printf("\\n");
        else putchar(*s);
    }
    printf("\"\n");
}

static const char *tokenizer_of(const char *template_name) {
    return !strcmp(template_name, "qwen") ? "models/qwen2-code-tiny" : !strcmp(template_name, "smollm2") ? FAMILIES "/smollm2/tokenizer.json"
                                                                                                        : FAMILIES "/llama3/tokenizer.json";
}

/* Every rendering of chat.jsonl, and the ids: encoding the conversation gives the ids of its
   rendered text wherever no content has white space at an edge (see arwkv_chat_encode). */
TEST(test_against_transformers) {
    size_t len;
    char *text = read_all(FAMILIES "/chat.jsonl", &len);
    CHECK(text != NULL, "cannot read %s/chat.jsonl", FAMILIES);
    if (!text) return;
    arwkv_chat_template *tpl = NULL;
    arwkv_tokenizer *tok = NULL;
    int rendered = 0, encoded = 0, bad = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        arwkv__json j;
        CHECK_OK(arwkv__json_parse(&j, line, n, "chat.jsonl"));
        const char *name = arwkv__json_get_str(&j, 0, "template_name");
        uint32_t tnode = arwkv__json_get(&j, 0, "template");
        if (tnode != ARWKV__JSON_NONE) { /* a new template */
            arwkv_chat_template_free(tpl);
            arwkv_tokenizer_free(tok);
            tpl = NULL, tok = NULL;
            CHECK_OK(arwkv_chat_template_parse(arwkv__json_str(&j, tnode), arwkv__json_str_len(&j, tnode), name, &tpl));
            CHECK_OK(arwkv_tokenizer_load(tokenizer_of(name), &tok));
            if (!strcmp(name, "smollm2"))
                CHECK(tpl && arwkv_chat_template_default_system(tpl) &&
                          !strcmp(arwkv_chat_template_default_system(tpl), "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
                      "SmolLM2's default system prompt: %s", tpl ? arwkv_chat_template_default_system(tpl) : "?");
            if (!strcmp(name, "qwen")) CHECK(tpl && !arwkv_chat_template_default_system(tpl), "Qwen3's template states no default");
            if (tpl)
                CHECK(arwkv_chat_template_format(tpl) == (!strcmp(name, "llama3") ? ARWKV_CHAT_LLAMA3 : ARWKV_CHAT_CHATML), "%s: format", name);
        } else if (tpl && tok) {
            uint32_t list = arwkv__json_get(&j, 0, "messages");
            arwkv_chat_message msgs[8];
            int m = 0, edge_space = 0; /* also a tool result: its "}" would pre-tokenize with the template's "\n" after it */
            for (uint32_t c = arwkv__json_first(&j, list); c != ARWKV__JSON_NONE && m < 8; c = arwkv__json_next(&j, c), m++) {
                msgs[m].role = arwkv__json_get_str(&j, c, "role");
                msgs[m].content = arwkv__json_get_str(&j, c, "content");
                size_t k = strlen(msgs[m].content);
                edge_space |= !strcmp(msgs[m].role, "tool");
                edge_space |= k && (msgs[m].content[0] == ' ' || msgs[m].content[0] == '\n' || msgs[m].content[k - 1] == ' ' ||
                                    msgs[m].content[k - 1] == '\n');
            }
            int flags = arwkv__json_bool(&j, arwkv__json_get(&j, 0, "generation_prompt")) == 1 ? ARWKV_CHAT_GENERATION_PROMPT : 0;
            const char *want = arwkv__json_str(&j, arwkv__json_get(&j, 0, "text"));
            char buf[4096];
            size_t got_len;
            CHECK_OK(arwkv_chat_template_render(tpl, msgs, m, flags, buf, sizeof buf, &got_len));
            if (strcmp(buf, want) != 0 && bad++ < 5) {
                printf("    %s, %d messages, flags %d:\n", name, m, flags);
                print_escaped("got     ", buf);
                print_escaped("expected", want);
            }
            rendered++;
            if (!edge_space) { /* ids: the conversation's equal those of its rendered text */
                arwkv_tokens ids = {0}, ref = {0};
                CHECK_OK(arwkv_chat_template_encode(tpl, tok, msgs, m, flags, &ids));
                CHECK_OK(arwkv_tokenizer_encode(tok, want, strlen(want), ARWKV_TOKENIZE_SPECIAL, &ref));
                int same = ids.n == ref.n && memcmp(ids.ids, ref.ids, ids.n * sizeof(int32_t)) == 0;
                CHECK(same, "%s, %d messages: chat encode (%zu ids) != encode(rendered) (%zu ids)", name, m, ids.n, ref.n);
                /* the mask: the answers and the token that ends each */
                int32_t stop = arwkv_tokenizer_token_id(tok, arwkv_chat_template_stop(tpl));
                size_t learned = 0, stops = 0, answers = 0;
                for (size_t i = 0; i < ids.n; i++) {
                    learned += ids.mask[i];
                    stops += ids.mask[i] && ids.ids[i] == stop;
                }
                for (int k = 0; k < m; k++) answers += !strcmp(msgs[k].role, "assistant");
                CHECK(stops == answers && (answers == 0 || learned > answers), "%s: %zu stop tokens learned for %zu answers", name, stops,
                      answers);
                encoded++;
                arwkv_tokens_free(&ids);
                arwkv_tokens_free(&ref);
            }
        }
        arwkv__json_free(&j);
        line += n + (nl ? 1 : 0);
    }
    CHECK(bad == 0, "%d of %d renderings differ from transformers'", bad, rendered);
    CHECK(rendered >= 36 && encoded >= 20, "%d renderings, %d encodings checked", rendered, encoded);
    printf("    %d renderings identical to transformers', %d encodings to the ids of the text\n", rendered - bad, encoded);
    arwkv_chat_template_free(tpl);
    arwkv_tokenizer_free(tok);
    free(text);
}

/* The library's own Qwen2.5 format is still what arwkv_chat_render writes (stage 3 trains on it). */
TEST(test_recognition) {
    arwkv_chat_template *t = NULL;
    /* a default prompt written with the \n escape, as Qwen2.5's template does, after a literal that
       is not one (the prompt must lie inside one string) */
    const char *qwen25 = "{%- if tools %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.' }}{%- else %}"
                         "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
                         "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
                         "{%- endif %}<tool_response>";
    CHECK_OK(arwkv_chat_template_parse(qwen25, strlen(qwen25), "qwen25", &t));
    CHECK(t && arwkv_chat_template_default_system(t) && !strcmp(arwkv_chat_template_default_system(t), ARWKV_CHAT_DEFAULT_SYSTEM),
          "Qwen2.5's default: %s", t ? arwkv_chat_template_default_system(t) : "?");
    if (t) { /* then it renders what arwkv_chat_render does */
        arwkv_chat_message conv[] = {{"user", "Hi"}, {"tool", "x"}, {"assistant", "ok"}};
        char a[1024], b[1024];
        CHECK_OK(arwkv_chat_template_render(t, conv, 3, ARWKV_CHAT_GENERATION_PROMPT, a, sizeof a, NULL));
        CHECK_OK(arwkv_chat_render(conv, 3, ARWKV_CHAT_GENERATION_PROMPT, b, sizeof b, NULL));
        CHECK(!strcmp(a, b), "the Qwen2.5 template renders as arwkv_chat_render:\n%s\n%s", a, b);
        /* ARWKV_CHAT_CONTINUE leaves out what begins a conversation */
        CHECK_OK(arwkv_chat_template_render(t, conv, 1, ARWKV_CHAT_CONTINUE, a, sizeof a, NULL));
        CHECK(!strcmp(a, "<|im_start|>user\nHi<|im_end|>\n"), "continue: %s", a);
    }
    arwkv_chat_template_free(t);
    t = NULL;
    /* the bundled teacher's tokenizer_config.json holds Qwen3's template */
    CHECK_OK(arwkv_chat_template_load("models/qwen2-code-tiny", &t));
    CHECK(t && arwkv_chat_template_format(t) == ARWKV_CHAT_CHATML && !arwkv_chat_template_default_system(t), "Qwen3's template");
    arwkv_chat_template_free(t);
    t = NULL;
    CHECK_OK(arwkv_chat_template_named("llama3", &t));
    if (t) {
        arwkv_chat_message conv[] = {{"user", "\t Hi \xe3\x80\x80"}};
        char a[256];
        CHECK_OK(arwkv_chat_template_render(t, conv, 1, ARWKV_CHAT_CONTINUE, a, sizeof a, NULL));
        CHECK(!strcmp(a, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"), "trimmed (U+3000 too), no bos: %s", a);
        CHECK(!strcmp(arwkv_chat_template_stop(t), "<|eot_id|>") && !strcmp(arwkv_chat_template_turn_end(t), "<|eot_id|>"), "stop");
        /* the Llama-3 markers must be tokens */
        arwkv_tokenizer *qwen = NULL;
        arwkv_tokens ids = {0};
        CHECK_OK(arwkv_tokenizer_load("models/qwen2-code-tiny", &qwen));
        CHECK(arwkv_chat_template_encode(t, qwen, conv, 1, 0, &ids) == ARWKV_ERR_UNSUPPORTED &&
                  strstr(arwkv_last_error(), "<|begin_of_text|>"),
              "%s", arwkv_last_error());
        arwkv_tokenizer_free(qwen);
        arwkv_tokens_free(&ids);
    }
    arwkv_chat_template_free(t);
    t = NULL;
    /* errors say what is wrong */
    const char *other = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
    CHECK(arwkv_chat_template_parse(other, strlen(other), "mistral.json", &t) == ARWKV_ERR_UNSUPPORTED &&
              strstr(arwkv_last_error(), "mistral.json") && strstr(arwkv_last_error(), "--chat-template chatml|llama3"),
          "unknown: %s", arwkv_last_error());
    const char *llama31 = "<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023<|eot_id|>";
    CHECK(arwkv_chat_template_parse(llama31, strlen(llama31), "l31", &t) == ARWKV_ERR_UNSUPPORTED && strstr(arwkv_last_error(), "3.1"),
          "llama 3.1: %s", arwkv_last_error());
    CHECK(arwkv_chat_template_named("vicuna", &t) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "\"vicuna\""), "named");
    CHECK(arwkv_chat_template_load("/nonexistent", &t) == ARWKV_ERR_IO, "missing file: %s", arwkv_last_error());
    CHECK(t == NULL, "no template on error");
}

int main(void) {
    RUN(test_against_transformers);
    RUN(test_recognition);
    return test_summary("chat template");
}
