/* replay_main.c: runs a libFuzzer target's LLVMFuzzerTestOneInput over its
 * committed inputs without clang, so that `make test` (plain and
 * ASan+UBSan builds) replays every corpus on every run. Linked with one
 * tests/fuzz/fuzz_NAME.c into $(B)/tests/test_fuzz_NAME (see the Makefile's
 * fuzz section); tests/run.sh runs it like any unit test.
 *
 *   test_fuzz_NAME            replays tests/fuzz/corpus/fuzz_NAME/ and, when
 *                             present, tests/fuzz/crashes/fuzz_NAME/ (run
 *                             from the top of the tree, as tests/run.sh does)
 *   test_fuzz_NAME FILE|DIR.. replays just those
 *
 * Prints one TAP line for the target. Each input is copied into a buffer of
 * exactly its size, so a read past the end is caught by ASan as it would be
 * under libFuzzer. A crash or failed assert ends the process (run.sh counts
 * that as a failure); the "# replaying" line before it names the input. A
 * missing or empty corpus is a failure too, so the check cannot pass by
 * replaying nothing. Memory is bounded (libFuzzer's -rss_limit_mb, smaller)
 * so that a saved out-of-memory input fails in seconds instead of taking
 * the machine down: the plain build caps its address space and fails an
 * input whose peak RSS passes REPLAY_RSS_MB; ASan, which reserves terabytes
 * of address space, gets the same cap as its own hard_rss_limit_mb.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (8u << 20) /* larger than any seed; a bigger file is an error */
#define REPLAY_RSS_MB 256
#define REPLAY_AS_MB 768

/* What is being replayed, for the line printed when a sanitizer ends the
 * process (the driver's only state outside main; a test program). */
static const char *s_target = "", *s_input = "";

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_STR2(x) #x
#define REPLAY_STR(x) REPLAY_STR2(x)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "hard_rss_limit_mb=" REPLAY_STR(REPLAY_RSS_MB);
}

void __sanitizer_set_death_callback(void (*callback)(void));

/* A sanitizer report (memory error, RSS limit) ends with a dump that can be
 * long; this puts the verdict, naming the input, after it. */
static void s_on_death(void)
{
    printf("not ok 1 - %s: %s ended the process (sanitizer report above)\n", s_target, s_input);
    fflush(stdout);
}
#else
/* Peak RSS of the process so far, in MB. */
static long s_peak_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024 : 0;
}
#endif

/* Replays one file. 0, or -errno when it cannot be read. */
static int s_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX) {
        fclose(f);
        return -EFBIG;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL || fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    s_input = path;
    printf("# replaying %s (%zu bytes)\n", path, n);
    fflush(stdout);
    (void)LLVMFuzzerTestOneInput(buf, n); /* never NULL, as under libFuzzer */
    free(buf);
#if !defined(__SANITIZE_ADDRESS__)
    long mb = s_peak_mb();
    if (mb > REPLAY_RSS_MB) {
        printf("# %s: peak RSS %ld MB, over %d MB\n", path, mb, REPLAY_RSS_MB);
        return -ENOMEM;
    }
#endif
    return 0;
}

static int s_not_hidden(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Replays a file, or every regular file of a directory in name order.
 * Adds to *count. 0, or -errno (-ENOENT when path does not exist). */
static int s_replay_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode)) {
        int rc = s_replay_file(path);
        *count += rc == 0;
        return rc;
    }
    struct dirent **names;
    int n = scandir(path, &names, s_not_hidden, alphasort);
    if (n < 0)
        return -errno;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        if (rc == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = s_replay_file(full);
            *count += rc == 0;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    const char *name = strncmp(base, "test_", 5) == 0 ? base + 5 : base; /* fuzz_NAME */
    s_target = name;
    printf("1..1\n");
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(s_on_death);
#endif
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit rl = {.rlim_cur = (rlim_t)REPLAY_AS_MB << 20,
                        .rlim_max = (rlim_t)REPLAY_AS_MB << 20};
    (void)setrlimit(RLIMIT_AS, &rl); /* best effort: the RSS check still holds */
#endif
    int corpus = 0, crashes = 0, rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc && rc == 0; i++)
            rc = s_replay_path(argv[i], &corpus);
    } else {
        char dir[512];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", name);
        rc = s_replay_path(dir, &corpus);
        if (rc == 0) {
            snprintf(dir, sizeof dir, "tests/fuzz/crashes/%s", name);
            int c = s_replay_path(dir, &crashes);
            rc = c == -ENOENT ? 0 : c;
        }
    }
    if (rc != 0 || corpus == 0) {
        printf("not ok 1 - %s: replay failed%s%s (%s)\n", name, s_input[0] ? " at " : "", s_input,
               rc != 0 ? strerror(-rc) : "no corpus files");
        return 1;
    }
    printf("ok 1 - %s: %d corpus and %d crash files replayed\n", name, corpus, crashes);
    return 0;
}
