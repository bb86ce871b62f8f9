/* fuzz_path.c: libFuzzer target for the path canonicaliser every TFTP and
 * HTTP request name goes through before a lookup (files_clean in
 * siteagent/files.c). Input: the requested name, as a device sends it (any
 * bytes; cut at the first NUL as the servers do). Properties checked on
 * every accepted name, the rules the resolver relies on to stay in its root:
 *   - not empty, at most FILES_NAME_MAX bytes, NUL-terminated;
 *   - no leading '/', no "//", no trailing '/', no '\', no control byte;
 *   - no "." or ".." component;
 *   - cleaning it again accepts it and changes nothing (idempotent);
 * and a refused name is left a string (the caller logs it).
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_clean(const char *s)
{
    size_t n = strlen(s);
    assert(n > 0 && n <= FILES_NAME_MAX);
    assert(s[0] != '/' && s[n - 1] != '/');
    assert(strstr(s, "//") == NULL);
    assert(strchr(s, '\\') == NULL);
    for (size_t i = 0; i < n; i++)
        assert((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] != 0x7f);
    /* every component: not "." and not ".." */
    const char *p = s;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t cl = slash ? (size_t)(slash - p) : strlen(p);
        assert(cl > 0);
        assert(!(cl == 1 && p[0] == '.'));
        assert(!(cl == 2 && p[0] == '.' && p[1] == '.'));
        if (slash == NULL)
            break;
        p = slash + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *name = malloc(size + 1);
    if (name == NULL)
        return 0;
    memcpy(name, data, size);
    name[size] = '\0'; /* the servers stop at the first NUL too */
    if (files_clean(name) == 0) {
        s_check_clean(name);
        char again[FILES_NAME_MAX + 1];
        memcpy(again, name, strlen(name) + 1);
        assert(files_clean(again) == 0);
        assert(strcmp(again, name) == 0);
    } else {
        assert(strlen(name) <= size); /* still a string, never grown */
    }
    free(name);
    return 0;
}
