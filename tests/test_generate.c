/* Generation: sampling filters, and (with the models) sessions and greedy decoding. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
#include "test.h"

static int32_t draw(arwkv_sampler *s, const float *logits, int V) {
    float tmp[64];
    memcpy(tmp, logits, (size_t)V * sizeof(float));
    return arwkv_sample(s, tmp, NULL, 0);
}

TEST(sampler_greedy_and_penalty) {
    arwkv_sampler_options o;
    arwkv_sampler_options_default(&o);
    o.temperature = 0;
    o.repetition_penalty = 1.0f;
    arwkv_sampler s;
    CHECK_OK(arwkv_sampler_init(&s, &o, 5));
    float l[5] = {1, 3, 3, -2, 0};
    CHECK(draw(&s, l, 5) == 1, "arg-max, lowest id on ties");
    arwkv_sampler_free(&s);
    o.repetition_penalty = 2.0f;
    CHECK_OK(arwkv_sampler_init(&s, &o, 5));
    float m[5] = {1, 3, 2.9f, -2, 0};
    int32_t recent[3] = {1, 1, 4};
    CHECK(arwkv_sample(&s, m, recent, 3) == 2 && m[1] == 1.5f && m[4] == 0, "penalty divides a positive logit once");
    arwkv_sampler_free(&s);
    o.top_p = 0;
    CHECK(arwkv_sampler_init(&s, &o, 5) == ARWKV_ERR_INVALID_ARGUMENT && strstr(arwkv_last_error(), "top-p"), "bad option refused");
}

TEST(sampler_distribution) {
    /* with temperature 1 and no filter, frequencies follow the softmax */
    arwkv_sampler_options o;
    arwkv_sampler_options_default(&o);
    o.temperature = 1, o.top_k = 0, o.top_p = 1, o.min_p = 0, o.repetition_penalty = 1, o.seed = 3;
    arwkv_sampler s;
    CHECK_OK(arwkv_sampler_init(&s, &o, 4));
    float l[4] = {0, 1, 2, -1};
    double p[4], z = 0;
    for (int i = 0; i < 4; i++) z += exp(l[i]);
    for (int i = 0; i < 4; i++) p[i] = exp(l[i]) / z;
    int count[4] = {0}, n = 200000;
    for (int i = 0; i < n; i++) count[draw(&s, l, 4)]++;
    for (int i = 0; i < 4; i++) {
        double sd = sqrt(n * p[i] * (1 - p[i]));
        CHECK(fabs(count[i] - n * p[i]) < 5 * sd, "token %d: %d draws, expected %.0f +- %.0f", i, count[i], n * p[i], sd);
    }
    arwkv_sampler_free(&s);
    /* the same seed draws the same sequence */
    int32_t a[50], b[50];
    for (int rep = 0; rep < 2; rep++) {
        CHECK_OK(arwkv_sampler_init(&s, &o, 4));
        for (int i = 0; i < 50; i++) (rep ? b : a)[i] = draw(&s, l, 4);
        arwkv_sampler_free(&s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "deterministic with a seed");
}

TEST(sampler_filters) {
    arwkv_sampler_options o;
    arwkv_sampler_options_default(&o);
    o.temperature = 1, o.repetition_penalty = 1, o.top_p = 1, o.min_p = 0;
    float l[6] = {5, 4, 3, 2, 1, 0};
    arwkv_sampler s;
    o.top_k = 2;
    CHECK_OK(arwkv_sampler_init(&s, &o, 6));
    int bad = 0;
    for (int i = 0; i < 2000; i++) bad += draw(&s, l, 6) > 1;
    CHECK(bad == 0, "top-k 2 draws only the two best (%d outside)", bad);
    arwkv_sampler_free(&s);
    /* p = softmax: 0.636, 0.234, 0.086, ...: top-p 0.8 keeps two */
    o.top_k = 0, o.top_p = 0.8f;
    CHECK_OK(arwkv_sampler_init(&s, &o, 6));
    bad = 0;
    int second = 0;
    for (int i = 0; i < 2000; i++) {
        int t = draw(&s, l, 6);
        bad += t > 1;
        second += t == 1;
    }
    CHECK(bad == 0 && second > 300, "top-p 0.8 keeps the smallest set reaching 0.8 (%d outside, %d second)", bad, second);
    arwkv_sampler_free(&s);
    /* min-p 0.3: keeps tokens with p >= 0.3 p_max = 0.19, i.e. two */
    o.top_p = 1, o.min_p = 0.3f;
    CHECK_OK(arwkv_sampler_init(&s, &o, 6));
    bad = 0;
    for (int i = 0; i < 2000; i++) bad += draw(&s, l, 6) > 1;
    CHECK(bad == 0, "min-p (%d outside)", bad);
    arwkv_sampler_free(&s);
}

int main(void) {
    RUN(sampler_greedy_and_penalty);
    RUN(sampler_distribution);
    RUN(sampler_filters);
    return test_summary("generate");
}
