/* generate: text from a checkpoint written by `train --task text`.
 *
 *   generate CHECKPOINT [--length N] [--temperature X] [--top-k K] [--seed N] [--prime TEXT]
 *
 * The checkpoint carries everything needed (the model's options and the vocabulary, as
 * metadata; seqmodel.h): the model is built from them and loaded, then fed the prime (or,
 * without one, the newline, or the vocabulary's first byte when it has none: that context
 * is not printed) and draws N characters, each fed back in. stdout gets the prime and the
 * N characters, nothing else; errors go to stderr (exit 1; a bad command line exits 2).
 * With the same seed and temperature (and no prime), the first 200 characters are those
 * train prints after training. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqmodel.h"

static void usage(FILE *f) {
    fprintf(f, "usage: generate CHECKPOINT [options]\n"
               "  --length N        characters to draw after the prime (default 500)\n"
               "  --temperature X   sampling temperature, 0 greedy (default 0.8)\n"
               "  --top-k K         draw among the K most probable (default 0: all)\n"
               "  --seed N          seed of the draws (default 1)\n"
               "  --prime TEXT      text the model reads first; printed first\n"
               "  --help            this text\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"length", required_argument, 0, 'n'},
                                         {"temperature", required_argument, 0, 't'},
                                         {"top-k", required_argument, 0, 'k'},
                                         {"seed", required_argument, 0, 's'},
                                         {"prime", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int64_t length = 500, seed = 1;
    sg_sample_opts so = sg_sample_defaults();
    so.temperature = 0.8;
    const char *prime = NULL;
    opterr = 0;
    int li = 0;
    for (int o; (o = getopt_long(argc, argv, "", opts, &li)) != -1;) {
        int bad = 0;
        const char *allowed = "";
        switch (o) {
        case 'n':
            bad = seqmodel_parse_i64(optarg, 0, INT64_C(1) << 40, &length);
            allowed = "an integer in 0..2^40";
            break;
        case 't':
            bad = seqmodel_parse_f64(optarg, 0, 100, &so.temperature);
            allowed = "a number in [0, 100]; 0 is greedy";
            break;
        case 'k':
            bad = seqmodel_parse_i64(optarg, 0, 256, &so.top_k);
            allowed = "an integer in 0..256; 0 is off";
            break;
        case 's':
            bad = seqmodel_parse_i64(optarg, 0, INT64_MAX, &seed);
            allowed = "an integer in 0..2^63-1";
            break;
        case 'p': prime = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "generate: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "generate: bad value '%s' for --%s (allowed: %s)\n", optarg,
                    opts[li].name, allowed);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                optind < argc ? "generate: one checkpoint, not %d arguments\n"
                              : "generate: no checkpoint given\n",
                argc - optind);
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];

    int rc = 1;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_st_file *f = NULL;
    seqmodel m = {0};
    sg_param_list list = {0};
    sg_tensor *h = NULL, *c = NULL;
    int64_t *ids = NULL;
    char err[256];
    if (!ctx || !store) {
        fprintf(stderr, "generate: out of memory\n");
        goto done;
    }
    /* The options first, then the model they describe, then its values. */
    seqmodel_options o;
    unsigned char vocab[256];
    int nvocab;
    int64_t batch;
    if (!(f = sg_checkpoint_meta(ctx, path)))
        goto fail;
    if (seqmodel_read_meta(f, &o, vocab, &nvocab, &batch, err, sizeof err)) {
        fprintf(stderr, "generate: %s: %s\n", path, err);
        goto done;
    }
    sg_st_free(f);
    f = NULL;
    /* the carried training state is in the file too: loaded, and not used */
    if (seqmodel_init(ctx, store, &m, &o, NULL) || sg_params_from_store(&list, store) ||
        seqmodel_state_new(ctx, &m, batch, &h, &c, &list) ||
        sg_checkpoint_load(ctx, path, &list, NULL, NULL, NULL))
        goto fail;

    int id_of[256];
    memset(id_of, -1, sizeof id_of);
    for (int i = 0; i < nvocab; i++)
        id_of[vocab[i]] = i;
    size_t np = prime ? strlen(prime) : 0;
    ids = malloc((np + 1 + (size_t)length) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "generate: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        unsigned char b = (unsigned char)prime[i];
        if (id_of[b] < 0) {
            fprintf(stderr, "generate: --prime: byte 0x%02x at %zu is not in the vocabulary\n", b,
                    i);
            goto done;
        }
        ids[i] = id_of[b];
    }
    if (np == 0) {
        ids[0] = seqmodel_default_prime(vocab, nvocab);
        np = 1;
    } else {
        fwrite(prime, 1, np, stdout);
    }
    sg_rng rng;
    sg_rng_seed(&rng, (uint64_t)seed);
    if (seqmodel_sample(ctx, &m, ids, (int64_t)np, length, &so, &rng, ids + np))
        goto fail;
    for (int64_t i = 0; i < length; i++)
        putchar(vocab[ids[np + (size_t)i]]);
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "generate: stdout: write failed: %s\n", strerror(errno ? errno : EIO));
        goto done;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "generate: %s\n", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "failed");
done:
    free(ids);
    sg_params_clear(&list);
    sg_tensor_free(h);
    sg_tensor_free(c);
    seqmodel_free(&m);
    sg_store_free(store);
    sg_st_free(f);
    sg_ctx_free(ctx);
    return rc;
}
