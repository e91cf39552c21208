/* arwkv-plot: the loss curves of arwkv-distill's OUT/log.csv files as one SVG picture.

     arwkv-plot -o curves.svg [--title TEXT] LOG.csv[=LABEL] ...

   One panel per stage (1 alignment, 2 KL distillation, 3 chat fine-tuning), side by side; in each,
   every log that has rows of that stage is a line of training loss against step, and its held-out
   evaluations are dots: the evaluation's KL to the teacher where it has one (stages 1-2), else the
   student's mean NLL, ln(perplexity) (stage 3), which is what the stage-3 loss measures. Losses of
   the three stages differ by orders of magnitude, so each panel has its own logarithmic y axis
   spanning whole decades.

   The mapping from numbers to the picture is fixed, so a test can check it: a panel <g> carries
   data-x0/data-x1 (pixel x of steps data-step0/data-step1) and data-y0/data-y1 (pixel y of
   10^data-dec1 and 10^data-dec0: top and bottom), and
       x = x0 + (step - step0) / (step1 - step0) * (x1 - x0)
       y = y1 - (log10(value) - dec0) / (dec1 - dec0) * (y1 - y0)
   Values that are not positive and finite cannot go on a log axis and are left out. Only libc. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct point {
    int step;
    double value;
} point;

typedef struct series { /* one log's rows of one stage */
    point *loss, *eval;
    int n_loss, n_eval, cap_loss, cap_eval;
} series;

#define MAX_LOGS 16
static const char *colors[MAX_LOGS] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
                                       "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"};

static int push(point **p, int *n, int *cap, int step, double v) {
    if (!(v > 0) || !isfinite(v)) return 0; /* not on a log axis */
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        point *q = (point *)realloc(*p, (size_t)c * sizeof *q);
        if (!q) return -1;
        *p = q, *cap = c;
    }
    (*p)[(*n)++] = (point){step, v};
    return 0;
}

/* Split a CSV line in place into at most max fields (no quoting: the log has none). */
static int split(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *s = line; n < max;) {
        f[n++] = s;
        char *c = strchr(s, ',');
        if (!c) break;
        *c = 0, s = c + 1;
    }
    return n;
}

/* Read one log into s[0..2] (stages 1-3). Returns 0, or 1 after printing what is wrong. */
static int read_log(const char *path, series s[3]) {
    FILE *f = fopen(path, "r");
    if (!f) return fprintf(stderr, "arwkv-plot: %s: cannot open\n", path), 1;
    char line[1024];
    int line_no = 0, status = 0;
    while (fgets(line, sizeof line, f) && !status) {
        line_no++;
        char *c[16];
        int n = split(line, c, 16);
        if (line_no == 1) {
            if (n < 10 || strcmp(c[0], "stage") || strcmp(c[1], "step") || strcmp(c[2], "kind"))
                status = (fprintf(stderr, "arwkv-plot: %s: not an arwkv-distill log.csv (its first line should start stage,step,kind)\n", path), 1);
            continue;
        }
        if (n == 1 && !c[0][0]) continue;
        char *end1, *end2;
        long stage = strtol(c[0], &end1, 10), step = n >= 2 ? strtol(c[1], &end2, 10) : 0;
        if (n < 10 || *end1 || stage < 1 || stage > 3 || *end2 || step < 0 || step > 100000000) {
            status = (fprintf(stderr, "arwkv-plot: %s line %d: expected 10 fields stage(1-3),step,kind,...\n", path, line_no), 1);
            continue;
        }
        series *t = &s[stage - 1];
        int r = 0;
        if (!strcmp(c[2], "train")) r = push(&t->loss, &t->n_loss, &t->cap_loss, (int)step, atof(c[3]));
        else if (!strcmp(c[2], "eval")) /* KL when there was a teacher, else ln(student perplexity) */
            r = push(&t->eval, &t->n_eval, &t->cap_eval, (int)step, c[9][0] ? atof(c[9]) : log(atof(c[7])));
        else status = (fprintf(stderr, "arwkv-plot: %s line %d: kind '%s' is neither train nor eval\n", path, line_no, c[2]), 1);
        if (r) status = (fprintf(stderr, "arwkv-plot: out of memory\n"), 1);
    }
    fclose(f);
    return status;
}

/* Text content and attribute values with XML's special characters escaped. */
static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static const char *stage_names[3] = {"stage 1: align time mixes (loss: L2)", "stage 2: distill logits (loss: KL)",
                                     "stage 3: chat fine-tuning (loss: CE)"};

int main(int argc, char **argv) {
    const char *out = NULL, *title = "arwkv-distill loss curves", *paths[MAX_LOGS], *labels[MAX_LOGS];
    int n_logs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--title") && i + 1 < argc) title = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: arwkv-plot -o OUT.svg [--title TEXT] LOG.csv[=LABEL] ...   (at most %d logs)\n", MAX_LOGS);
            return 0;
        } else if (argv[i][0] == '-') return fprintf(stderr, "arwkv-plot: unknown option or missing value: '%s' (see --help)\n", argv[i]), 2;
        else if (n_logs == MAX_LOGS) return fprintf(stderr, "arwkv-plot: at most %d logs\n", MAX_LOGS), 2;
        else {
            static char buf[MAX_LOGS][4096];
            snprintf(buf[n_logs], sizeof buf[n_logs], "%s", argv[i]);
            char *eq = strchr(buf[n_logs], '=');
            if (eq) *eq = 0;
            paths[n_logs] = buf[n_logs], labels[n_logs] = eq ? eq + 1 : buf[n_logs];
            n_logs++;
        }
    }
    if (!out || !n_logs) return fprintf(stderr, "usage: arwkv-plot -o OUT.svg [--title TEXT] LOG.csv[=LABEL] ...\n"), 2;
    static series s[MAX_LOGS][3];
    for (int i = 0; i < n_logs; i++)
        if (read_log(paths[i], s[i])) return 1;

    /* the panels of the stages that have data */
    int stages[3], n_panels = 0;
    for (int st = 0; st < 3; st++) {
        int any = 0;
        for (int i = 0; i < n_logs; i++) any |= s[i][st].n_loss + s[i][st].n_eval > 0;
        if (any) stages[n_panels++] = st;
    }
    if (!n_panels) return fprintf(stderr, "arwkv-plot: no positive finite loss or evaluation in the logs\n"), 1;

    const int PW = 380, PH = 260, ML = 60, MR = 20, MT = 60, MB = 50, LEGEND = 18 * n_logs + 10;
    int W = n_panels * (ML + PW + MR), H = MT + PH + MB + LEGEND;
    FILE *f = fopen(out, "w");
    if (!f) return fprintf(stderr, "arwkv-plot: %s: cannot write\n", out), 1;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    for (int p = 0; p < n_panels; p++) {
        int st = stages[p], step1 = 1;
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n_logs; i++) {
            const series *t = &s[i][st];
            for (int k = 0; k < t->n_loss + t->n_eval; k++) {
                const point *q = k < t->n_loss ? &t->loss[k] : &t->eval[k - t->n_loss];
                if (q->step > step1) step1 = q->step;
                lo = fmin(lo, q->value), hi = fmax(hi, q->value);
            }
        }
        int dec0 = (int)floor(log10(lo)), dec1 = (int)ceil(log10(hi));
        if (dec1 <= dec0) dec1 = dec0 + 1;
        int x0 = p * (ML + PW + MR) + ML, x1 = x0 + PW, y0 = MT, y1 = MT + PH, step0 = 0;
#define PX(step) (x0 + (double)((step) - step0) / (step1 - step0) * (x1 - x0))
#define PY(v) (y1 - (log10(v) - dec0) / (double)(dec1 - dec0) * (y1 - y0))
        fprintf(f, "<g class=\"panel\" data-stage=\"%d\" data-x0=\"%d\" data-x1=\"%d\" data-step0=\"%d\" data-step1=\"%d\" data-y0=\"%d\" "
                   "data-y1=\"%d\" data-dec0=\"%d\" data-dec1=\"%d\">\n",
                st + 1, x0, x1, step0, step1, y0, y1, dec0, dec1);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">%s</text>\n", (x0 + x1) / 2, y0 - 12, stage_names[st]);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", x0, y0, PW, PH);
        /* y grid: every decade, with 2x and 5x lines when the axis spans few decades */
        for (int d = dec0; d <= dec1; d++) {
            fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ccc\"/>\n", x0, PY(pow(10, d)), x1, PY(pow(10, d)));
            fprintf(f, "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n", x0 - 4, PY(pow(10, d)) + 4, pow(10, d));
            for (int m = 2; d < dec1 && dec1 - dec0 <= 3 && m <= 5; m += 3)
                fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#eee\"/>\n", x0, PY(m * pow(10, d)), x1, PY(m * pow(10, d)));
        }
        for (int k = 0; k <= 4; k++) { /* x ticks: quarters of the steps */
            int stp = step0 + (int)((long long)(step1 - step0) * k / 4);
            fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", PX(stp), y1 + 16, stp);
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n", (x0 + x1) / 2, y1 + 34);
        for (int i = 0; i < n_logs; i++) {
            const series *t = &s[i][st];
            if (t->n_loss) {
                fprintf(f, "<polyline class=\"loss\" data-log=\"%d\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", i, colors[i]);
                for (int k = 0; k < t->n_loss; k++) fprintf(f, "%s%.2f,%.2f", k ? " " : "", PX(t->loss[k].step), PY(t->loss[k].value));
                fprintf(f, "\"/>\n");
            }
            for (int k = 0; k < t->n_eval; k++)
                fprintf(f, "<circle class=\"eval\" data-log=\"%d\" cx=\"%.2f\" cy=\"%.2f\" r=\"4\" fill=\"white\" stroke=\"%s\" stroke-width=\"2\">"
                           "<title>step %d: held-out %s %.4g</title></circle>\n",
                        i, PX(t->eval[k].step), PY(t->eval[k].value), colors[i], t->eval[k].step, st < 2 ? "KL" : "NLL", t->eval[k].value);
        }
        fprintf(f, "</g>\n");
#undef PX
#undef PY
    }
    /* legend: one line per log, then what the dots are */
    for (int i = 0; i < n_logs; i++) {
        int y = MT + PH + MB + 14 + 18 * i;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", ML, y - 4, ML + 24, y - 4, colors[i]);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", ML + 30, y);
        xml_text(f, labels[i]);
        fprintf(f, " (line: training loss; dots: held-out KL to the teacher, or NLL without one)</text>\n");
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) || bad) return fprintf(stderr, "arwkv-plot: %s: write failed\n", out), 1;
    for (int i = 0; i < n_logs; i++)
        for (int st = 0; st < 3; st++) free(s[i][st].loss), free(s[i][st].eval);
    return 0;
}
