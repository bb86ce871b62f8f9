/* fuzz_window.c: libFuzzer target for maintenance-window specs (lib/window.h),
 * which reach the controller from operators and the agent from the
 * controller. The whole input is the spec; a hash of it picks the zone
 * (including one with a 30-minute DST shift) and the instant, so a seed
 * that is a plain spec stays a plain spec. Asserts the contracts of
 * window.h along the way: one-line reasons, allows in {0,1}, next_open
 * at or after now, open and with every minute before it closed,
 * open_left > 0 exactly when open, hours_list NUL-terminated in its room.
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_win_zones[] = {"", "Europe/Berlin", "America/New_York",
                                          "Australia/Lord_Howe"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > WINDOW_SPEC_MAX + 16)
        return 0;
    char *spec = malloc(size + 1);
    if (spec == NULL)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';

    window_t *w = NULL;
    char err[160];
    err[0] = '\0';
    int rc = window_parse(spec, &w, err, sizeof err);
    if (rc != 0) {
        assert(w == NULL);
        assert(err[0] != '\0' && strchr(err, '\n') == NULL);
        free(spec);
        return 0;
    }
    assert(w != NULL);

    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    const char *tz = s_win_zones[h % 4];
    /* 2026-01-01 plus up to two years, to the second */
    time_t now = (time_t)(1767225600 + (int64_t)((h >> 8) % (2 * 366 * 86400)));

    int a = window_allows(w, now, tz);
    assert(a == 0 || a == 1);
    int64_t left = window_open_left(w, now, tz);
    assert(left >= 0 && left <= 8 * 86400);
    assert((left > 0) == (a == 1));
    time_t next = window_next_open(w, now, tz);
    if (next != (time_t)-1) {
        assert(next >= now);
        assert(window_allows(w, next, tz) == 1);
        assert((next == now) == (a == 1));
        if (next - 60 >= now)
            assert(window_allows(w, next - 60, tz) == 0);
    } else {
        assert(a == 0);
    }
    char hours[80];
    window_hours_list(w, hours, sizeof hours);
    assert(strlen(hours) < sizeof hours);
    char small[5];
    window_hours_list(w, small, sizeof small);
    assert(strlen(small) < sizeof small);
    window_free(w);
    free(spec);
    return 0;
}
