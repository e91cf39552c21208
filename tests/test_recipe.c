/* The pieces of the distillation recipe (bench/distill-smollm2.sh), driven as the recipe drives
   them: the trainer's OUT/log.csv and arwkv-plot's SVG, arwkv-eval --teacher, batched answering of
   prompts, and the data tools. (Built by `make` before `make test` runs this.) */
#define _DEFAULT_SOURCE /* popen */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"
#include <sys/wait.h>

static char *slurp(const char *path) {
    char cmd[600], *out;
    snprintf(cmd, sizeof cmd, "cat '%s' 2>/dev/null", path);
    test_run(cmd, &out);
    return out;
}

/* ---- OUT/log.csv --------------------------------------------------------------------------------- */

typedef struct log_row {
    int stage, step;
    char kind[8];
    double loss, lr, grad_norm, student_ppl, teacher_ppl, kl;
    long long tokens;
} log_row;

/* Parse a log.csv text: checks the header, returns the rows (at most max), -1 if malformed. */
static int parse_log(char *text, log_row *rows, int max) {
    const char *header = "stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl\n";
    if (strncmp(text, header, strlen(header))) return -1;
    int n = 0;
    for (char *line = strtok(text + strlen(header), "\n"); line && n < max; line = strtok(NULL, "\n"), n++) {
        log_row *r = &rows[n];
        memset(r, 0, sizeof *r);
        char *f[10];
        int k = 0;
        for (char *s = line; k < 10;) { /* split on commas, keeping empty fields */
            f[k++] = s;
            char *c = strchr(s, ',');
            if (!c) break;
            *c = 0, s = c + 1;
        }
        if (k != 10) return -1;
        r->stage = atoi(f[0]), r->step = atoi(f[1]);
        snprintf(r->kind, sizeof r->kind, "%s", f[2]);
        r->loss = f[3][0] ? atof(f[3]) : NAN, r->lr = f[4][0] ? atof(f[4]) : NAN, r->grad_norm = f[5][0] ? atof(f[5]) : NAN;
        r->tokens = f[6][0] ? atoll(f[6]) : -1;
        r->student_ppl = f[7][0] ? atof(f[7]) : NAN, r->teacher_ppl = f[8][0] ? atof(f[8]) : NAN, r->kl = f[9][0] ? atof(f[9]) : NAN;
    }
    return n;
}

#define DISTILL_TINY                                                                                                   \
    "build/arwkv-distill --teacher models/qwen2-code-tiny --stage 2 --data tests/test_cli.c --eval-data tests/test.h " \
    "--seq-len 32 --batch 1 --schedule constant --eval-windows 2 --threads 2 "

/* The rows and columns after a short run; after a resume, the rows an interrupted run wrote past its
   checkpoint are gone and the log equals that of one uninterrupted run. */
TEST(distill_log_csv_rows_and_resume) {
    system("rm -rf build/test_log && mkdir -p build/test_log");
    int st = test_run(DISTILL_TINY "--out build/test_log/a --steps 4 --eval-every 2 >/dev/null 2>&1", NULL);
    CHECK(st == 0, "4-step run: status %d", st);
    char *text = slurp("build/test_log/a/log.csv");
    log_row a[32];
    int n = parse_log(text, a, 32);
    free(text);
    /* eval before, steps 1-2, eval @2, steps 3-4, eval after */
    const char *kinds[7] = {"eval", "train", "train", "eval", "train", "train", "eval"};
    const int steps[7] = {0, 1, 2, 2, 3, 4, 4};
    CHECK(n == 7, "%d rows", n);
    for (int i = 0; i < n && i < 7; i++) {
        CHECK(a[i].stage == 2 && a[i].step == steps[i] && !strcmp(a[i].kind, kinds[i]), "row %d: stage %d step %d %s", i, a[i].stage, a[i].step,
              a[i].kind);
        if (!strcmp(a[i].kind, "train"))
            CHECK(a[i].loss > 0 && fabs(a[i].lr - 1e-3) < 1e-9 && a[i].grad_norm > 0 && a[i].tokens == 32LL * a[i].step && isnan(a[i].kl),
                  "train row %d: loss %g lr %g |g| %g tokens %lld", i, a[i].loss, a[i].lr, a[i].grad_norm, a[i].tokens);
        else
            CHECK(a[i].student_ppl > 1 && a[i].teacher_ppl > 1 && a[i].kl > 0 && isnan(a[i].loss) && a[i].tokens == -1,
                  "eval row %d: ppl %g / %g KL %g", i, a[i].student_ppl, a[i].teacher_ppl, a[i].kl);
    }
    /* the teacher does not change: the same teacher perplexity at every evaluation */
    CHECK(n == 7 && a[0].teacher_ppl == a[3].teacher_ppl && a[3].teacher_ppl == a[6].teacher_ppl, "teacher ppl varies");

    /* an interrupted run had logged step 5 after its last checkpoint (step 4): the resume redoes it */
    system("echo '2,5,train,123,1,1,999,,,' >> build/test_log/a/log.csv");
    st = test_run(DISTILL_TINY "--out build/test_log/a --steps 6 --resume >/dev/null 2>&1", NULL);
    CHECK(st == 0, "resume: status %d", st);
    st = test_run(DISTILL_TINY "--out build/test_log/b --steps 6 >/dev/null 2>&1", NULL);
    CHECK(st == 0, "6-step run: status %d", st);
    char *ta = slurp("build/test_log/a/log.csv"), *tb = slurp("build/test_log/b/log.csv");
    log_row ra[32], rb[32];
    int na = parse_log(ta, ra, 32), nb = parse_log(tb, rb, 32);
    free(ta), free(tb);
    /* resumed: the 7 rows above, steps 5 and 6, eval after; whole run: eval before, steps 1-6, eval after */
    CHECK(na == 10 && nb == 8, "%d rows after the resume, %d in the whole run", na, nb);
    int trained = 0;
    for (int i = 0, j = 0; i < na && na == 10 && nb == 8; i++) {
        if (strcmp(ra[i].kind, "train")) continue;
        while (j < nb && strcmp(rb[j].kind, "train")) j++;
        CHECK(j < nb && ra[i].step == ++trained && rb[j].step == trained, "train rows in step order: %d %d", ra[i].step, j < nb ? rb[j].step : -1);
        CHECK(j < nb && ra[i].loss == rb[j].loss && ra[i].grad_norm == rb[j].grad_norm && ra[i].tokens == rb[j].tokens,
              "step %d: resumed loss %.6g |g| %.6g tokens %lld, whole run %.6g %.6g %lld", ra[i].step, ra[i].loss, ra[i].grad_norm,
              ra[i].tokens, rb[j].loss, rb[j].grad_norm, rb[j].tokens);
        j++;
    }
    CHECK(trained == 6, "%d train rows after the resume", trained);
    CHECK(na == 10 && !strcmp(ra[9].kind, "eval") && ra[9].step == 6 && fabs(ra[9].kl - rb[7].kl) < 1e-6 * rb[7].kl, "final evaluations differ");
}

/* ---- arwkv-plot ---------------------------------------------------------------------------------- */

/* Well-formed XML for what an SVG writer emits: one prolog, balanced elements, quoted attributes,
   no bare '<' or '&' in text. Returns NULL or what is wrong. */
static const char *xml_check(const char *s) {
    static char why[200];
    char stack[64][32];
    int depth = 0, roots = 0;
    if (strncmp(s, "<?xml ", 6) == 0) s = strstr(s, "?>") ? strstr(s, "?>") + 2 : s + strlen(s);
    while (*s) {
        if (*s == '&') {
            const char *e = strchr(s, ';');
            if (!e || e - s > 6) return "a bare '&'";
            s = e + 1;
            continue;
        }
        if (*s != '<') {
            if (!depth && !strchr(" \t\r\n", *s)) return "text outside the root element";
            s++;
            continue;
        }
        int closing = s[1] == '/';
        const char *p = s + 1 + closing;
        char name[32];
        int k = 0;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == ':')
            if (k < 31) name[k++] = *p++;
            else return "name too long";
        name[k] = 0;
        if (!k) return "a '<' that starts no element";
        if (closing) {
            if (!depth || strcmp(stack[depth - 1], name)) return snprintf(why, sizeof why, "</%s> closes nothing open", name), why;
            depth--;
            if (*p != '>') return "junk in a closing tag";
            s = p + 1;
            continue;
        }
        for (;;) { /* attributes: name="value" with no '<' inside */
            while (*p == ' ' || *p == '\n') p++;
            if (*p == '>' || (p[0] == '/' && p[1] == '>')) break;
            const char *a = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (p > a && *p >= '0' && *p <= '9') || *p == '-' || *p == ':') p++;
            if (p == a || p[0] != '=' || p[1] != '"') return snprintf(why, sizeof why, "bad attribute in <%s>", name), why;
            const char *e = strchr(p + 2, '"');
            if (!e || memchr(p + 2, '<', (size_t)(e - p - 2))) return "unterminated attribute value";
            p = e + 1;
        }
        if (!depth) roots++;
        if (*p == '/') s = p + 2;
        else {
            if (depth == 64) return "too deep";
            snprintf(stack[depth++], 32, "%s", name);
            s = p + 1;
        }
    }
    if (depth) return snprintf(why, sizeof why, "<%s> is never closed", stack[depth - 1]), why;
    return roots == 1 ? NULL : "not exactly one root element";
}

static double attr(const char *tag, const char *name) {
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(tag, key);
    return p ? atof(p + strlen(key)) : NAN;
}

/* The picture of two logs: well-formed, one panel per stage present, and every curve point and
   evaluation dot exactly where the panel's stated axes put the CSV's numbers. */
TEST(plot_svg_points_where_the_numbers_put_them) {
    system("mkdir -p build/test_log && printf 'stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl\\n"
           "1,0,eval,,,,,900,30,2.5\\n1,1,train,40,1e-3,1,64,,,\\n1,2,train,8,1e-3,1,128,,,\\n1,4,train,0.5,1e-3,1,256,,,\\n1,4,eval,,,,,60,30,0.7\\n'"
           " > build/test_log/s1.csv && printf 'stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl\\n"
           "3,1,train,2.0,1e-4,1,64,,,\\n3,10,train,1.5,1e-4,1,640,,,\\n3,10,eval,,,,,4.0,,\\n' > build/test_log/s3.csv");
    char *out;
    int st = test_run("build/arwkv-plot -o build/test_log/p.svg --title 'a & b <test>' build/test_log/s1.csv='ARWKV-7 & co' build/test_log/s3.csv 2>&1", &out);
    CHECK(st == 0, "arwkv-plot: %d %s", st, out);
    free(out);
    char *svg = slurp("build/test_log/p.svg");
    const char *bad = xml_check(svg);
    CHECK(bad == NULL && strstr(svg, "<svg ") && strstr(svg, "a &amp; b &lt;test&gt;"), "SVG not well-formed: %s", bad ? bad : "title not escaped");
    /* expected values per panel: stage 1 (loss points 40, 8, 0.5 at steps 1, 2, 4; dots KL 2.5 @0, 0.7 @4),
       stage 3 (loss 2.0 @1, 1.5 @10; dot ln 4 @10: without a teacher the dot is the NLL) */
    struct { int stage, n_loss, n_eval, step1, dec0, dec1; int ls[3]; double lv[3]; int es[2]; double ev[2]; } want[2] = {
        {1, 3, 2, 4, -1, 2, {1, 2, 4}, {40, 8, 0.5}, {0, 4}, {2.5, 0.7}},
        {3, 2, 1, 10, 0, 1, {1, 10, 0}, {2.0, 1.5, 0}, {10, 0}, {log(4.0), 0}},
    };
    int panels = 0;
    for (const char *g = strstr(svg, "<g class=\"panel\""); g; g = strstr(g + 1, "<g class=\"panel\""), panels++) {
        if (panels >= 2) break;
        const char *end = strstr(g, "</g>");
        double x0 = attr(g, "data-x0"), x1 = attr(g, "data-x1"), s0 = attr(g, "data-step0"), s1 = attr(g, "data-step1");
        double y0 = attr(g, "data-y0"), y1 = attr(g, "data-y1"), d0 = attr(g, "data-dec0"), d1 = attr(g, "data-dec1");
        int stage = (int)attr(g, "data-stage");
        CHECK(stage == want[panels].stage && s0 == 0 && s1 == want[panels].step1 && d0 == want[panels].dec0 && d1 == want[panels].dec1 &&
                  x1 > x0 && y1 > y0,
              "panel %d: stage %d steps %g..%g decades %g..%g", panels, stage, s0, s1, d0, d1);
#define EX(step) (x0 + ((step) - s0) / (s1 - s0) * (x1 - x0))
#define EY(v) (y1 - (log10(v) - d0) / (d1 - d0) * (y1 - y0))
        const char *pl = strstr(g, "<polyline class=\"loss\"");
        CHECK(pl && pl < end, "panel %d has no loss line", panels);
        const char *pts = pl ? strstr(pl, "points=\"") : NULL;
        for (int k = 0; pts && k < want[panels].n_loss; k++) {
            double px, py;
            int used = 0;
            pts += k ? 0 : 8;
            CHECK(sscanf(pts, "%lf,%lf%n", &px, &py, &used) == 2, "point %d", k);
            CHECK(fabs(px - EX(want[panels].ls[k])) < 0.01 && fabs(py - EY(want[panels].lv[k])) < 0.01, "panel %d point %d at (%g, %g), want (%g, %g)",
                  panels, k, px, py, EX(want[panels].ls[k]), EY(want[panels].lv[k]));
            pts += used;
        }
        CHECK(pts && *pts == '"', "panel %d: more loss points than rows", panels);
        int dots = 0;
        for (const char *c = strstr(g, "<circle class=\"eval\""); c && c < end; c = strstr(c + 1, "<circle class=\"eval\""), dots++) {
            if (dots >= want[panels].n_eval) break;
            double cx = attr(c, "cx"), cy = attr(c, "cy");
            CHECK(fabs(cx - EX(want[panels].es[dots])) < 0.01 && fabs(cy - EY(want[panels].ev[dots])) < 0.01, "panel %d dot %d at (%g, %g), want (%g, %g)",
                  panels, dots, cx, cy, EX(want[panels].es[dots]), EY(want[panels].ev[dots]));
        }
        CHECK(dots == want[panels].n_eval, "panel %d: %d evaluation dots", panels, dots);
#undef EX
#undef EY
    }
    CHECK(panels == 2, "%d panels (stages 1 and 3 have data, stage 2 none)", panels);
    free(svg);
    /* a file that is not a log is refused by name and line */
    system("printf 'stage,step,kind,loss,lr,grad_norm,tokens,student_ppl,teacher_ppl,kl\\n7,1,train,1,1,1,1,,,\\n' > build/test_log/bad.csv");
    st = test_run("build/arwkv-plot -o build/test_log/bad.svg build/test_log/bad.csv 2>&1", &out);
    CHECK(st != 0 && strstr(out, "build/test_log/bad.csv line 2"), "bad log: %d %s", st, out);
    free(out);
    st = test_run("build/arwkv-plot -o build/test_log/bad.svg tests/test.h 2>&1", &out);
    CHECK(st != 0 && strstr(out, "tests/test.h") && strstr(out, "log.csv"), "not a log: %d %s", st, out);
    free(out);
}

/* ---- arwkv-eval --teacher ----------------------------------------------------------------------- */

/* NLL, KL(teacher || student) and top-1 agreement computed here in double precision from both models'
   logits, one token at a time through sessions (a path of its own: the eval tool reads whole windows),
   over windows of `win` tokens each from a fresh state; a position counts when mask is NULL or
   mask[its target]. */
static void hand_compare(arwkv_model *t, arwkv_model *s, const int32_t *ids, const uint8_t *mask, int n, int win, double *nll, double *tnll,
                         double *kl, double *agree, int *count) {
    int V = s->cfg.vocab_size;
    float *lt = (float *)malloc((size_t)V * sizeof(float)), *ls = (float *)malloc((size_t)V * sizeof(float));
    arwkv_session *st, *ss;
    CHECK_OK(arwkv_session_create(t, 0, &st));
    CHECK_OK(arwkv_session_create(s, 0, &ss));
    *nll = *tnll = *kl = *agree = 0, *count = 0;
    for (int w0 = 0; w0 < n; w0 += win) {
        CHECK_OK(arwkv_session_reset(st));
        CHECK_OK(arwkv_session_reset(ss));
        for (int i = w0; i + 1 < n && i + 1 < w0 + win; i++) {
            CHECK_OK(arwkv_session_feed(st, ids + i, 1, lt));
            CHECK_OK(arwkv_session_feed(ss, ids + i, 1, ls));
            if (mask && !mask[i + 1]) continue;
            double mt = -INFINITY, ms = -INFINITY, zt = 0, zs = 0, k = 0;
            int at = 0, as = 0;
            for (int v = 0; v < V; v++) {
                if (lt[v] > mt) mt = lt[v], at = v;
                if (ls[v] > ms) ms = ls[v], as = v;
            }
            for (int v = 0; v < V; v++) zt += exp(lt[v] - mt), zs += exp(ls[v] - ms);
            double lzt = mt + log(zt), lzs = ms + log(zs);
            for (int v = 0; v < V; v++) k += exp(lt[v] - lzt) * ((lt[v] - lzt) - (ls[v] - lzs));
            *nll += lzs - ls[ids[i + 1]], *tnll += lzt - lt[ids[i + 1]], *kl += k, *agree += at == as, (*count)++;
        }
    }
    if (*count) *nll /= *count, *tnll /= *count, *kl /= *count, *agree /= *count;
    arwkv_session_free(st), arwkv_session_free(ss);
    free(lt), free(ls);
}

static int parse_eval(const char *out, int *tokens, double *nll, int *targets, double *tnll, double *kl, double *agree) {
    double ppl, tppl;
    return sscanf(out, "tokens %d nll %lf ppl %lf targets %d teacher_nll %lf teacher_ppl %lf kl %lf agreement %lf", tokens, nll, &ppl, targets, tnll,
                  &tppl, kl, agree) == 8;
}

/* arwkv-eval --teacher's numbers on a text (two windows) and on JSON-lines conversations (assistant
   tokens only) equal the ones computed by hand from both models' logits. */
TEST(eval_teacher_kl_and_agreement_by_hand) {
    system("rm -rf build/test_eval_student");
    int st = test_run("build/arwkv-convert --teacher models/qwen2-code-tiny --out build/test_eval_student --init inherit --seed 5 >/dev/null 2>&1", NULL);
    CHECK(st == 0, "convert: %d", st);
    arwkv_backend *be;
    arwkv_model *t, *s;
    arwkv_tokenizer *tok;
    CHECK_OK(arwkv_backend_cpu(2, &be));
    CHECK_OK(arwkv_model_load("models/qwen2-code-tiny", be, &t));
    CHECK_OK(arwkv_model_load("build/test_eval_student", be, &s));
    CHECK_OK(arwkv_tokenizer_load("models/qwen2-code-tiny", &tok));
    /* a text of more than two 24-token windows: only the first two count */
    const char *text = "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n\n"
                       "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n";
    FILE *f = fopen("build/test_eval.txt", "w");
    fputs(text, f);
    fclose(f);
    arwkv_tokens ids = {NULL, NULL, 0, 0};
    CHECK_OK(arwkv_tokenizer_encode(tok, text, strlen(text), 0, &ids));
    CHECK(ids.n > 48, "%zu tokens", ids.n);
    double nll, tnll, kl, agree, e_nll, e_tnll, e_kl, e_agree;
    int count, e_tokens, e_targets;
    hand_compare(t, s, ids.ids, NULL, 48, 24, &nll, &tnll, &kl, &agree, &count);
    char *out;
    st = test_run("build/arwkv-eval --model build/test_eval_student --teacher models/qwen2-code-tiny --text build/test_eval.txt --max-tokens 24 --windows 2 "
             "--threads 2 2>/dev/null", &out);
    CHECK(st == 0 && parse_eval(out, &e_tokens, &e_nll, &e_targets, &e_tnll, &e_kl, &e_agree), "arwkv-eval: %d '%s'", st, out);
    CHECK(e_tokens == 48 && e_targets == 46 && count == 46, "tokens %d targets %d, by hand %d", e_tokens, e_targets, count);
    CHECK(fabs(e_nll - nll) < 1e-4 * nll && fabs(e_tnll - tnll) < 1e-4 * tnll && fabs(e_kl - kl) < 1e-4 * kl + 1e-5,
          "nll %.6f teacher %.6f KL %.6f; by hand %.6f %.6f %.6f", e_nll, e_tnll, e_kl, nll, tnll, kl);
    CHECK(fabs(e_agree - agree) < 1e-6 && kl > 0.01, "agreement %.6f, by hand %.6f (KL %.4f: the student must differ)", e_agree, agree, kl);
    free(out);
    /* the teacher against itself: KL 0, agreement 1 */
    st = test_run("build/arwkv-eval --model models/qwen2-code-tiny --teacher models/qwen2-code-tiny --text build/test_eval.txt --max-tokens 40 2>/dev/null", &out);
    CHECK(st == 0 && parse_eval(out, &e_tokens, &e_nll, &e_targets, &e_tnll, &e_kl, &e_agree) && fabs(e_kl) < 1e-9 && e_agree == 1 && e_nll == e_tnll,
          "teacher vs itself: '%s'", out);
    free(out);

    /* conversations: only the assistant tokens are scored */
    const char *jsonl = "{\"messages\": [{\"role\": \"user\", \"content\": \"Write a function that adds two numbers.\"}, "
                        "{\"role\": \"assistant\", \"content\": \"def add(a, b):\\n    return a + b\"}]}\n"
                        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Name a sorting algorithm.\"}, "
                        "{\"role\": \"assistant\", \"content\": \"Merge sort.\"}, {\"role\": \"user\", \"content\": \"Another?\"}, "
                        "{\"role\": \"assistant\", \"content\": \"Quicksort.\"}]}\n";
    f = fopen("build/test_eval.jsonl", "w");
    fputs(jsonl, f);
    fclose(f);
    arwkv_chat_message c1[2] = {{"user", "Write a function that adds two numbers."}, {"assistant", "def add(a, b):\n    return a + b"}};
    arwkv_chat_message c2[5] = {{"system", "Be brief."}, {"user", "Name a sorting algorithm."}, {"assistant", "Merge sort."}, {"user", "Another?"},
                                {"assistant", "Quicksort."}};
    arwkv_tokens conv = {NULL, NULL, 0, 0};
    CHECK_OK(arwkv_chat_encode(tok, c1, 2, 0, &conv));
    CHECK_OK(arwkv_chat_encode(tok, c2, 5, 0, &conv));
    int masked = 0;
    for (size_t i = 1; i < conv.n; i++) masked += conv.mask[i] != 0;
    hand_compare(t, s, conv.ids, conv.mask, (int)conv.n, 1 << 20, &nll, &tnll, &kl, &agree, &count);
    st = test_run("build/arwkv-eval --model build/test_eval_student --teacher models/qwen2-code-tiny --text build/test_eval.jsonl --threads 2 2>/dev/null", &out);
    CHECK(st == 0 && parse_eval(out, &e_tokens, &e_nll, &e_targets, &e_tnll, &e_kl, &e_agree), "arwkv-eval on conversations: %d '%s'", st, out);
    CHECK(e_tokens == (int)conv.n && e_targets == masked && count == masked && masked > 10 && masked < (int)conv.n / 2,
          "tokens %d (want %zu), targets %d, assistant tokens %d", e_tokens, conv.n, e_targets, masked);
    CHECK(fabs(e_nll - nll) < 1e-4 * nll && fabs(e_tnll - tnll) < 1e-4 * tnll && fabs(e_kl - kl) < 1e-4 * kl + 1e-5 && fabs(e_agree - agree) < 1e-6,
          "conversations: nll %.6f teacher %.6f KL %.6f agreement %.4f; by hand %.6f %.6f %.6f %.4f", e_nll, e_tnll, e_kl, e_agree, nll, tnll, kl, agree);
    free(out);
    arwkv_tokens_free(&conv);
    arwkv_tokens_free(&ids);
    arwkv_tokenizer_free(tok);
    arwkv_model_free(s), arwkv_model_free(t);
    arwkv_backend_destroy(be);
}

/* ---- arwkv-answer --------------------------------------------------------------------------------- */

/* Parse a file of conversations line by line; returns how many, -1 if a line does not parse. */
static int read_conversations(const char *path, arwkv_chat_message **convs, int *lens, int max) {
    char *text = slurp(path);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (n == max || arwkv_chat_parse(line, strlen(line), path, &convs[n], &lens[n]) != ARWKV_OK) {
            free(text);
            return -1;
        }
        n++;
    }
    free(text);
    return n;
}

/* Conversations in, the same conversations with the model's answer appended out, in order; the
   answers do not depend on the batch size (each conversation has its own seed). */
TEST(answer_jsonl_conversations_in_batches) {
    FILE *f = fopen("build/test_answer_in.jsonl", "w");
    fputs("{\"messages\": [{\"role\": \"user\", \"content\": \"Write a function that adds two numbers.\"}]}\n"
          "\n"
          "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Sort a list\"}, "
          "{\"role\": \"assistant\", \"content\": \"sorted(xs)\"}, {\"role\": \"user\", \"content\": \"And \\\"reverse\\\" it?\"}]}\n"
          "{\"messages\": [{\"role\": \"user\", \"content\": \"import\"}]}\n",
          f);
    fclose(f);
    char *out;
    int st = test_run("build/arwkv-answer --model models/qwen2-code-tiny --jsonl build/test_answer_in.jsonl --out build/test_answer_b3.jsonl --batch 3 "
                 "-n 8 --temperature 0.8 --seed 11 --threads 2 2>&1 && build/arwkv-answer --model models/qwen2-code-tiny --jsonl build/test_answer_in.jsonl "
                 "--batch 1 -n 8 --temperature 0.8 --seed 11 --threads 2 > build/test_answer_b1.jsonl 2>/dev/null",
                 &out);
    CHECK(st == 0 && strstr(out, "3 conversations"), "arwkv-answer: %d %s", st, out);
    free(out);
    char *b3 = slurp("build/test_answer_b3.jsonl"), *b1 = slurp("build/test_answer_b1.jsonl");
    CHECK(strlen(b3) > 0 && strcmp(b3, b1) == 0, "batch 3 and batch 1 answer differently:\n%s\n---\n%s", b3, b1);
    free(b3), free(b1);
    arwkv_chat_message *in[4], *ans[4];
    int n_in[4], n_ans[4];
    int ni = read_conversations("build/test_answer_in.jsonl", in, n_in, 4), na = read_conversations("build/test_answer_b3.jsonl", ans, n_ans, 4);
    CHECK(ni == 3 && na == 3, "%d conversations in, %d out", ni, na);
    for (int i = 0; i < 3 && ni == 3 && na == 3; i++) {
        CHECK(n_ans[i] == n_in[i] + 1 && !strcmp(ans[i][n_in[i]].role, "assistant") && strlen(ans[i][n_in[i]].content) > 0,
              "conversation %d: %d messages, %d in", i, n_ans[i], n_in[i]);
        for (int k = 0; k < n_in[i] && n_ans[i] == n_in[i] + 1; k++)
            CHECK(!strcmp(in[i][k].role, ans[i][k].role) && !strcmp(in[i][k].content, ans[i][k].content), "conversation %d message %d changed", i, k);
    }
    for (int i = 0; i < ni; i++) arwkv_free(in[i]);
    for (int i = 0; i < na; i++) arwkv_free(ans[i]);
    /* a conversation that does not end with the user's message, and a line that is not one, are refused by line */
    system("printf '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\\n{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\\n'"
           " > build/test_answer_bad.jsonl");
    st = test_run("build/arwkv-answer --model models/qwen2-code-tiny --jsonl build/test_answer_bad.jsonl 2>&1", &out);
    CHECK(st != 0 && strstr(out, "build/test_answer_bad.jsonl line 2") && strstr(out, "user"), "bad conversation: %d %s", st, out);
    free(out);
    system("printf '{\"text\": \"hi\"}\\n' > build/test_answer_bad.jsonl");
    st = test_run("build/arwkv-answer --model models/qwen2-code-tiny --jsonl build/test_answer_bad.jsonl 2>&1", &out);
    CHECK(st != 0 && strstr(out, "build/test_answer_bad.jsonl line 1") && strstr(out, "messages"), "not a conversation: %d %s", st, out);
    free(out);
}

/* The JSON-lines conversation format: what arwkv_chat_to_json writes, arwkv_chat_parse reads back,
   special characters and all; bytes that are not UTF-8 become U+FFFD. */
TEST(conversation_json_round_trip) {
    arwkv_chat_message m[3] = {{"system", "tab\there, quote \" and backslash \\"}, {"user", "line\nbreak, \x01 control, caf\xc3\xa9, \xe2\x82\xac"},
                               {"assistant", "cut \xe2\x82"}};
    char *json;
    CHECK_OK(arwkv_chat_to_json(m, 3, &json));
    CHECK(!strchr(json, '\n') && strstr(json, "\\\"") && strstr(json, "\\u0001"), "one escaped line: %s", json);
    arwkv_chat_message *back;
    int n;
    CHECK_OK(arwkv_chat_parse(json, strlen(json), "round trip", &back, &n));
    CHECK(n == 3 && !strcmp(back[0].content, m[0].content) && !strcmp(back[1].content, m[1].content) && !strcmp(back[2].role, "assistant") &&
              !strcmp(back[2].content, "cut \xef\xbf\xbd\xef\xbf\xbd"),
          "read back %d messages: '%s'", n, n == 3 ? back[2].content : "");
    arwkv_free(back), arwkv_free(json);
    const char *bad[3] = {"{\"messages\": [{\"role\": \"user\"}]}", "{\"text\": \"x\"}", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}"};
    for (int i = 0; i < 3; i++) {
        arwkv_result r = arwkv_chat_parse(bad[i], strlen(bad[i]), "x.jsonl line 9", &back, &n);
        CHECK(r == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), "x.jsonl line 9") && back == NULL, "bad %d: %s", i, arwkv_last_error());
    }
}

/* One message per line (arwkv-tokenize --chat's input): blank lines skipped, escapes decoded, and
   each bad line named by its number with nothing returned. */
TEST(conversation_one_message_per_line) {
    const char *text = "{\"role\": \"system\", \"content\": \"be brief\"}\n\n  \r\n{\"role\": \"user\", \"content\": \"caf\\u00e9\\n?\"}\n"
                       "{\"content\": \"\", \"role\": \"assistant\"}";
    arwkv_chat_message *m = NULL;
    int n = 0;
    CHECK_OK(arwkv_chat_parse_lines(text, strlen(text), "c.jsonl", &m, &n));
    CHECK(n == 3 && !strcmp(m[0].role, "system") && !strcmp(m[0].content, "be brief") && !strcmp(m[1].role, "user") &&
              !strcmp(m[1].content, "caf\xc3\xa9\n?") && !strcmp(m[2].role, "assistant") && !strcmp(m[2].content, ""),
          "%d messages", n);
    arwkv_free(m);
    CHECK_OK(arwkv_chat_parse_lines("\n \n", 3, "empty", &m, &n));
    CHECK(n == 0, "blank text: %d messages", n);
    arwkv_free(m);
    const char *bad[3] = {"{\"role\": \"user\", \"content\": \"a\"}\n{\"role\": \"user\"}\n",
                          "{\"role\": \"user\", \"content\": \"a\"}\n\n{\"role\": \"user\", \"content\": \"a\\u0000b\"}",
                          "{\"role\": \"user\", \"content\": \"a\"}\n[1,\n"};
    const char *line[3] = {"c.jsonl: line 2", "c.jsonl: line 3", "c.jsonl: line 2"};
    for (int i = 0; i < 3; i++) {
        m = (arwkv_chat_message *)1;
        arwkv_result r = arwkv_chat_parse_lines(bad[i], strlen(bad[i]), "c.jsonl", &m, &n);
        CHECK(r == ARWKV_ERR_FORMAT && strstr(arwkv_last_error(), line[i]) && m == NULL && n == 0, "bad %d: %s", i, arwkv_last_error());
    }
}

/* ---- data tools ----------------------------------------------------------------------------------- */

static int count_lines(const char *path) {
    char *t = slurp(path);
    int n = 0;
    for (char *p = t; *p; p++) n += *p == '\n';
    free(t);
    return n;
}

/* A small documentation tree: English pages and READMEs are kept once each and split by file; a
   translated page, a licence, a duplicate, binary bytes and a table of numbers are not. */
TEST(data_prose_from_a_small_tree) {
    if (test_run("python3 -c 'import json, gzip' 2>/dev/null", NULL) != 0) SKIP("no python3");
    system("rm -rf build/test_data && mkdir -p build/test_data/man/man1 build/test_data/man/de/man1 build/test_data/doc/p1 build/test_data/doc/p2");
    const char *para = "The frobnicate command reads the files given to it and writes them to the standard output in the order in which they are "
                       "named, which is the simplest way to join files. It is often used with a pipe, and the options below change how it treats "
                       "blank lines and the ends of lines. This is a paragraph of English text for the test of the data tool.";
    char cmd[4096];
    for (int i = 0; i < 8; i++) { /* eight English documents: four pages, four READMEs */
        if (i < 4)
            snprintf(cmd, sizeof cmd, "printf '.TH FROB%d 1\\n.SH NAME\\nfrob%d \\\\- frobnicate\\n.SH DESCRIPTION\\n.B frob%d\\n%s\\n.PP\\n%s\\n' | gzip > build/test_data/man/man1/frob%d.1.gz",
                     i, i, i, para, para, i);
        else snprintf(cmd, sizeof cmd, "mkdir -p build/test_data/doc/d%d && printf 'Document %d.\\n\\n%s\\n\\n%s\\n' > build/test_data/doc/d%d/README", i, i, para, para, i);
        system(cmd);
    }
    snprintf(cmd, sizeof cmd, "printf '.TH FROB 1\\n.SH NAME\\n%s\\n' | gzip > build/test_data/man/de/man1/frob.1.gz && "
             "printf '%s\\n' > build/test_data/doc/p1/copyright && cp build/test_data/doc/d4/README build/test_data/doc/p2/README && "
             "head -c 3000 /dev/urandom > build/test_data/doc/p1/notes.txt && seq 1 400 > build/test_data/doc/p2/table.txt", para, para);
    system(cmd);
    char *out;
    int st = test_run("python3 tools/data_prose.py --roots build/test_data/man build/test_data/doc --out build/test_data/out --heldout-percent 50 2>&1", &out);
    CHECK(st == 0 && strstr(out, "kept"), "data_prose.py: %d %s", st, out);
    free(out);
    int tr = count_lines("build/test_data/out/train.jsonl"), ho = count_lines("build/test_data/out/heldout.jsonl");
    CHECK(tr + ho == 8 && tr > 0 && ho > 0, "%d training + %d held-out documents, want 8 in all, both sides non-empty", tr, ho);
    char *all = slurp("build/test_data/out/train.jsonl"), *ho_text = slurp("build/test_data/out/heldout.txt"), *stats = slurp("build/test_data/out/stats.json");
    CHECK(strstr(all, "frob") || strstr(ho_text, "frob"), "no manual page kept");
    CHECK(!strstr(all, ".SH") && !strstr(all, "\\\\-") && !strstr(ho_text, ".SH") && !strstr(ho_text, ".PP"), "troff left in the text");
    CHECK(strstr(stats, "\"duplicate\": 1") && strstr(stats, "\"not_english\": 1") && strstr(stats, "\"unreadable\": 1") &&
              strstr(stats, "\"not_a_document\": 2"), "stats: %s", stats);
    /* the split is by file and fixed: a second run gives the same files */
    st = test_run("python3 tools/data_prose.py --roots build/test_data/man build/test_data/doc --out build/test_data/out2 --heldout-percent 50 >/dev/null 2>&1 && "
             "cmp build/test_data/out/train.jsonl build/test_data/out2/train.jsonl && cmp build/test_data/out/heldout.txt build/test_data/out2/heldout.txt", NULL);
    CHECK(st == 0, "a second run differs");
    /* each held-out document is a whole document of the tree, in heldout.txt too */
    CHECK(count_lines("build/test_data/out/heldout.txt") >= 3 * ho, "heldout.txt: %d lines for %d documents", count_lines("build/test_data/out/heldout.txt"), ho);
    free(all), free(ho_text), free(stats);
    st = test_run("python3 tools/data_prose.py --roots /nonexistent --out build/test_data/none 2>&1", &out);
    CHECK(st != 0 && strstr(out, "/nonexistent"), "missing roots: %d %s", st, out);
    free(out);
}

/* The prompt generator: the counts asked for, every line a one-message user conversation, no prompt
   twice and none in both sets, the same seed the same files. */
TEST(data_prompts_generator) {
    if (test_run("python3 -c 'import json' 2>/dev/null", NULL) != 0) SKIP("no python3");
    system("rm -rf build/test_prompts build/test_prompts2");
    int st = test_run("python3 tools/data_prompts.py --out build/test_prompts --count 500 --heldout 60 --seed 3 >/dev/null 2>&1 && "
                 "python3 tools/data_prompts.py --out build/test_prompts2 --count 500 --heldout 60 --seed 3 >/dev/null 2>&1 && "
                 "cmp build/test_prompts/prompts_train.jsonl build/test_prompts2/prompts_train.jsonl", NULL);
    CHECK(st == 0, "generator failed or is not deterministic");
    static arwkv_chat_message *tr[600], *ho[100], *fx[30];
    static int ntr[600], nho[100], nfx[30];
    int a = read_conversations("build/test_prompts/prompts_train.jsonl", tr, ntr, 600), b = read_conversations("build/test_prompts/prompts_heldout.jsonl", ho, nho, 100),
        c = read_conversations("build/test_prompts/prompts_fixed20.jsonl", fx, nfx, 30);
    CHECK(a == 500 && b == 60 && c == 20, "%d, %d, %d prompts", a, b, c);
    int bad = 0, dup = 0, kinds = 0;
    const char *starts[4] = {"What is", "Write a", "Explain", "List"};
    int seen_kind[4] = {0};
    for (int i = 0; i < a + b && a == 500 && b == 60; i++) {
        arwkv_chat_message *m = i < a ? tr[i] : ho[i - a];
        int n = i < a ? ntr[i] : nho[i - a];
        bad += n != 1 || strcmp(m[0].role, "user") || strlen(m[0].content) < 8;
        for (int k = 0; k < 4; k++) seen_kind[k] |= !strncmp(m[0].content, starts[k], strlen(starts[k]));
        for (int j = 0; j < i; j++) dup += !strcmp(m[0].content, (j < a ? tr[j] : ho[j - a])[0].content);
    }
    for (int k = 0; k < 4; k++) kinds += seen_kind[k];
    CHECK(bad == 0 && dup == 0 && kinds == 4, "%d malformed, %d repeated, %d of 4 kinds of prompt", bad, dup, kinds);
    for (int i = 0; i < 20 && b == 60 && c == 20; i++) CHECK(!strcmp(fx[i][0].content, ho[i][0].content), "fixed prompt %d is not held-out prompt %d", i, i);
    for (int i = 0; i < a; i++) arwkv_free(tr[i]);
    for (int i = 0; i < b; i++) arwkv_free(ho[i]);
    for (int i = 0; i < c; i++) arwkv_free(fx[i]);
}

int main(void) {
    RUN(distill_log_csv_rows_and_resume);
    RUN(plot_svg_points_where_the_numbers_put_them);
    RUN(eval_teacher_kl_and_agreement_by_hand);
    RUN(answer_jsonl_conversations_in_batches);
    RUN(conversation_json_round_trip);
    RUN(conversation_one_message_per_line);
    RUN(data_prose_from_a_small_tree);
    RUN(data_prompts_generator);
    return test_summary("recipe");
}
