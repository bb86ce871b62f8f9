/* tfix.h: the fixture of unit tests that work on files: a fresh temporary
 * directory per test with one file path inside it (a journal, a store),
 * removed with everything in it afterwards. Header-only, so each test
 * program stays one .c file:
 *     static int s_setup(void **state) { return tfix_dir_setup(state, "lease", "journal.db"); }
 *     ... struct tfix_dir *f = *state; journal_open(f->path, ...) ...
 *     cmocka_unit_test_setup_teardown(t, s_setup, tfix_dir_teardown) */
#ifndef FF_TFIX_H
#define FF_TFIX_H

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

struct tfix_dir {
    char dir[64];   /* /tmp/ff-test-TAG.XXXXXX */
    char path[128]; /* dir/FILE */
};

/* Makes the directory (tag names the test in /tmp) and quiets the log to
 * errors. 0, or -1 and nothing made. */
static inline int tfix_dir_setup(void **state, const char *tag, const char *file)
{
    struct tfix_dir *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ff-test-%s.XXXXXX", tag);
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, file);
    log_set_level(LOG_LEVEL_ERROR);
    *state = f;
    return 0;
}

/* Removes the directory and everything in it. 0, or -1 if it stayed. */
static inline int tfix_dir_teardown(void **state)
{
    struct tfix_dir *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd) == 0 ? 0 : -1;
    free(f);
    return rc;
}

#endif
