/* test_window.c: window specs (good and bad, with the exact reasons),
 * window_allows at chosen instants in Europe/Berlin and America/New_York
 * (instants built with timegm from known UTC times), the midnight-crossing
 * rule, hours lists, blackouts, both DST nights of 2026 in Berlin,
 * next_open, open_left, hours_list, spread and tz_valid, and that TZ is
 * left exactly as it was. 2026-11-20 is a Friday.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "window.h"

#define BER "Europe/Berlin"
#define NYC "America/New_York"

static time_t s_utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return timegm(&tm);
}

static window_t *s_parse(const char *spec)
{
    window_t *w = NULL;
    char err[256] = "";
    int rc = window_parse(spec, &w, err, sizeof err);
    if (rc != 0)
        fail_msg("window_parse(\"%s\"): %d %s", spec, rc, err);
    assert_non_null(w);
    return w;
}

static int s_allows(const char *spec, time_t t, const char *tz)
{
    window_t *w = s_parse(spec);
    int r = window_allows(w, t, tz);
    window_free(w);
    return r;
}

static void test_parse_good(void **state)
{
    (void)state;
    const char *good[] = {
        "",
        "   ",
        "Mon-Fri 22:00-05:00",
        "Sat,Sun 00:00-24:00",
        "daily 01:00-03:00",
        "hours 23,0,1,2,3,4",
        "hours 23, 0 ,1",
        "!2026-12-24",
        "!2026-12-24..2026-12-26",
        "!2026-12-24..2026-12-24",
        "!2028-02-29",
        "mon 9:00-17:30",
        "MON-fri 00:00-00:30",
        "Fri-Mon 10:00-11:00",
        "Mon-Wed,Fri 10:00-11:00",
        "Saturday 10:00-11:00",
        "DAILY 22:00-00:00",
        " Mon-Fri 22:00-05:00 ; Sat,Sun 00:00-24:00;!2026-12-24..2026-12-26 ; hours 3 ",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        window_free(s_parse(good[i]));
    window_free(NULL);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static char longspec[WINDOW_SPEC_MAX + 2];
    memset(longspec, ' ', sizeof longspec - 1);
    memcpy(longspec, "daily 01:00-02:00", 17);
    const struct {
        const char *spec, *why;
    } bad[] = {
        {"daily 01:00-02:00; Mon-Fry 22:00-05:00",
         "clause 2 \"Mon-Fry 22:00-05:00\": unknown weekday \"Fry\""},
        {"Mo 01:00-02:00", "clause 1 \"Mo 01:00-02:00\": unknown weekday \"Mo\""},
        {"daily 24:00-02:00", "clause 1 \"daily 24:00-02:00\": hour \"24\" outside 0..23"},
        {"daily 01:00-25:00", "clause 1 \"daily 01:00-25:00\": hour \"25\" outside 0..23"},
        {"daily 01:00-24:30", "clause 1 \"daily 01:00-24:30\": hour \"24\" outside 0..23"},
        {"hours 1,24", "clause 1 \"hours 1,24\": hour \"24\" outside 0..23"},
        {"hours", "clause 1 \"hours\": expected hours 0..23 after \"hours\""},
        {"hours 1,,2", "clause 1 \"hours 1,,2\": expected an hour at \",2\""},
        {"daily 01:60-02:00", "clause 1 \"daily 01:60-02:00\": minute \"60\" outside 0..59"},
        {"daily 01:00-02:99", "clause 1 \"daily 01:00-02:99\": minute \"99\" outside 0..59"},
        {"daily 03:00-03:00", "clause 1 \"daily 03:00-03:00\": start equals end"},
        {"daily 00:00-00:00", "clause 1 \"daily 00:00-00:00\": start equals end"},
        {"!2026-02-30", "clause 1 \"!2026-02-30\": bad date \"2026-02-30\""},
        {"!2027-02-29", "clause 1 \"!2027-02-29\": bad date \"2027-02-29\""},
        {"!2026-13-01", "clause 1 \"!2026-13-01\": bad date \"2026-13-01\""},
        {"!2026-1-01", "clause 1 \"!2026-1-01\": expected a date YYYY-MM-DD at \"2026-1-01\""},
        {"!2026-12-26..2026-12-24",
         "clause 1 \"!2026-12-26..2026-12-24\": blackout range ends before it starts"},
        {"daily 01:00-02:00;;hours 1", "clause 2 \"\": empty clause"},
        {"daily 01:00-02:00;", "clause 2 \"\": empty clause"},
        {longspec, "spec longer than 512 characters"},
        {"daily 01:00-02:00 x", "clause 1 \"daily 01:00-02:00 x\": trailing junk \"x\""},
        {"!2026-12-24x", "clause 1 \"!2026-12-24x\": trailing junk \"x\""},
        {"hours 1 2", "clause 1 \"hours 1 2\": trailing junk \"2\""},
        {"Mon-Fri", "clause 1 \"Mon-Fri\": expected HH:MM-HH:MM after \"Mon-Fri\""},
        {"Mon-Fri 2200-0500", "clause 1 \"Mon-Fri 2200-0500\": expected HH:MM at \"2200-0500\""},
        {"Mon-Fri 22:00",
         "clause 1 \"Mon-Fri 22:00\": expected '-' and an end time after \"22:00\""},
        {"Mon-,Fri 22:00-05:00",
         "clause 1 \"Mon-,Fri 22:00-05:00\": expected a weekday at \",Fri\""},
        {"Mon;Fri 22:00-05:00", "clause 1 \"Mon\": expected HH:MM-HH:MM after \"Mon\""},
        {"Mon/Fri 22:00-05:00",
         "clause 1 \"Mon/Fri 22:00-05:00\": unexpected \"/Fri\" in the days"},
        {"Mon-Fri 22:00-05:00\n", "clause 1 \"Mon-Fri 22:00-05:00?\": trailing junk \"?\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        window_t *w = (window_t *)(uintptr_t)1;
        char err[256] = "";
        int rc = window_parse(bad[i].spec, &w, err, sizeof err);
        if (rc != -EINVAL || strcmp(err, bad[i].why) != 0)
            fail_msg("spec %zu \"%s\": rc %d, reason\n  got  %s\n  want %s", i, bad[i].spec, rc,
                     err, bad[i].why);
        assert_null(w);
        assert_null(strchr(err, '\n'));
    }
    /* a short error buffer is cut, never overrun */
    window_t *w;
    char small[8];
    assert_int_equal(window_parse("Mon-Fry 22:00-05:00", &w, small, sizeof small), -EINVAL);
    assert_int_equal(strlen(small), 7);
    /* exactly WINDOW_SPEC_MAX is fine */
    longspec[WINDOW_SPEC_MAX] = '\0';
    window_free(s_parse(longspec));
}

static void test_allows_berlin_newyork(void **state)
{
    (void)state;
    const char *wk = "Mon-Fri 22:00-05:00";
    /* Berlin is UTC+1 in November */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 20, 21, 30), BER), 1); /* Fri 22:30 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 20, 20, 59), BER), 0); /* Fri 21:59 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 21, 2, 0), BER), 1);   /* Sat 03:00 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 21, 3, 59), BER), 1);  /* Sat 04:59 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 21, 4, 0), BER), 0);   /* Sat 05:00 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 21, 21, 30), BER), 0); /* Sat 22:30 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 22, 2, 0), BER), 0);   /* Sun 03:00 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 23, 2, 0), BER), 0);   /* Mon 03:00 */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 23, 21, 0), BER), 1);  /* Mon 22:00 */
    /* the same instant in UTC is Fri 21:30: closed */
    assert_int_equal(s_allows(wk, s_utc(2026, 11, 20, 21, 30), ""), 0);

    /* New York is UTC-5 in November, UTC-4 in July */
    const char *d = "daily 01:00-03:00";
    assert_int_equal(s_allows(d, s_utc(2026, 11, 20, 6, 30), NYC), 1); /* 01:30 EST */
    assert_int_equal(s_allows(d, s_utc(2026, 11, 20, 5, 30), NYC), 0); /* 00:30 EST */
    assert_int_equal(s_allows(d, s_utc(2026, 11, 20, 8, 0), NYC), 0);  /* 03:00 EST */
    assert_int_equal(s_allows(d, s_utc(2026, 11, 20, 1, 30), NYC), 0); /* 20:30 EST */
    assert_int_equal(s_allows(d, s_utc(2026, 11, 20, 1, 30), ""), 1);  /* 01:30 UTC */
    assert_int_equal(s_allows(d, s_utc(2026, 7, 1, 5, 30), NYC), 1);   /* 01:30 EDT */
    assert_int_equal(s_allows(d, s_utc(2026, 7, 1, 7, 0), NYC), 0);    /* 03:00 EDT */

    /* empty spec: any time; NULL window: any time, whatever the zone */
    assert_int_equal(s_allows("", s_utc(2026, 11, 20, 12, 0), BER), 1);
    assert_int_equal(window_allows(NULL, s_utc(2026, 11, 20, 12, 0), BER), 1);
    /* an unknown zone is an error, not a silent UTC */
    window_t *w = s_parse(d);
    assert_int_equal(window_allows(w, s_utc(2026, 11, 20, 1, 30), "Nope/Nowhere"), -EINVAL);
    assert_int_equal(window_allows(w, s_utc(2026, 11, 20, 1, 30), "../etc/passwd"), -EINVAL);
    assert_int_equal(window_next_open(w, s_utc(2026, 11, 20, 1, 30), "Nope/Nowhere"), (time_t)-1);
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 20, 1, 30), "Nope/Nowhere"), 0);
    window_free(w);
}

static void test_midnight_rule(void **state)
{
    (void)state;
    const char *f = "Fri 22:00-05:00";
    assert_int_equal(s_allows(f, s_utc(2026, 11, 21, 2, 0), BER), 1);  /* Sat 03:00 */
    assert_int_equal(s_allows(f, s_utc(2026, 11, 20, 2, 0), BER), 0);  /* Fri 03:00 */
    assert_int_equal(s_allows(f, s_utc(2026, 11, 20, 22, 0), BER), 1); /* Fri 23:00 */
    /* a list and a wrapping range */
    assert_int_equal(s_allows("Sat,Sun 00:00-24:00", s_utc(2026, 11, 22, 22, 59), BER), 1);
    assert_int_equal(s_allows("Sat,Sun 00:00-24:00", s_utc(2026, 11, 22, 23, 0), BER), 0);
    assert_int_equal(s_allows("Fri-Mon 10:00-11:00", s_utc(2026, 11, 22, 9, 30), BER), 1); /* Sun */
    assert_int_equal(s_allows("Fri-Mon 10:00-11:00", s_utc(2026, 11, 24, 9, 30), BER), 0); /* Tue */
    /* end 00:00 is midnight: nothing after it */
    assert_int_equal(s_allows("Fri 22:00-00:00", s_utc(2026, 11, 20, 22, 59), BER), 1);
    assert_int_equal(s_allows("Fri 22:00-00:00", s_utc(2026, 11, 20, 23, 0), BER), 0);
    /* case-insensitive names */
    assert_int_equal(s_allows("fri 22:00-05:00", s_utc(2026, 11, 21, 2, 0), BER), 1);
    assert_int_equal(s_allows("FRI 22:00-05:00", s_utc(2026, 11, 21, 2, 0), BER), 1);
}

static void test_hours_and_blackouts(void **state)
{
    (void)state;
    const char *h = "hours 23,0,1,2,3,4";
    assert_int_equal(s_allows(h, s_utc(2026, 11, 20, 22, 30), BER), 1); /* 23:30 */
    assert_int_equal(s_allows(h, s_utc(2026, 11, 21, 3, 59), BER), 1);  /* 04:59 */
    assert_int_equal(s_allows(h, s_utc(2026, 11, 21, 4, 0), BER), 0);   /* 05:00 */
    assert_int_equal(s_allows(h, s_utc(2026, 11, 20, 21, 59), BER), 0); /* 22:59 */
    /* clauses add up */
    const char *two = "Sat 10:00-11:00; hours 3";
    assert_int_equal(s_allows(two, s_utc(2026, 11, 21, 9, 30), BER), 1);
    assert_int_equal(s_allows(two, s_utc(2026, 11, 24, 2, 30), BER), 1);
    assert_int_equal(s_allows(two, s_utc(2026, 11, 24, 9, 30), BER), 0);

    /* blackout dates override, by local date */
    const char *b = "daily 00:00-24:00; !2026-12-24..2026-12-26";
    assert_int_equal(s_allows(b, s_utc(2026, 12, 23, 22, 59), BER), 1); /* 23rd 23:59 */
    assert_int_equal(s_allows(b, s_utc(2026, 12, 23, 23, 0), BER), 0);  /* 24th 00:00 */
    assert_int_equal(s_allows(b, s_utc(2026, 12, 25, 12, 0), BER), 0);
    assert_int_equal(s_allows(b, s_utc(2026, 12, 26, 22, 59), BER), 0); /* 26th 23:59 */
    assert_int_equal(s_allows(b, s_utc(2026, 12, 26, 23, 0), BER), 1);  /* 27th 00:00 */
    /* 2026-12-24 00:30 in UTC is still the 23rd in New York */
    assert_int_equal(s_allows(b, s_utc(2026, 12, 24, 0, 30), NYC), 1);
    assert_int_equal(s_allows(b, s_utc(2026, 12, 24, 0, 30), ""), 0);
    /* blackouts alone: any other time */
    assert_int_equal(s_allows("!2026-12-24", s_utc(2026, 12, 24, 12, 0), BER), 0);
    assert_int_equal(s_allows("!2026-12-24", s_utc(2026, 12, 25, 12, 0), BER), 1);
    /* a blackout covers the after-midnight part of the night before too */
    assert_int_equal(s_allows("Thu 22:00-05:00; !2026-12-25", s_utc(2026, 12, 25, 1, 0), BER), 0);
    assert_int_equal(s_allows("Thu 22:00-05:00; !2026-12-25", s_utc(2026, 12, 24, 22, 0), BER), 1);
}

static void test_dst_berlin(void **state)
{
    (void)state;
    window_t *w = s_parse("daily 01:00-04:00");
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 01:00 CEST is
     * 23:00 UTC the day before, 04:00 CET is 03:00 UTC: four hours open */
    assert_int_equal(window_allows(w, s_utc(2026, 10, 24, 22, 59), BER), 0);
    assert_int_equal(window_allows(w, s_utc(2026, 10, 24, 23, 0), BER), 1);
    assert_int_equal(window_allows(w, s_utc(2026, 10, 25, 0, 30), BER), 1); /* 02:30 CEST */
    assert_int_equal(window_allows(w, s_utc(2026, 10, 25, 1, 30), BER), 1); /* 02:30 CET */
    assert_int_equal(window_allows(w, s_utc(2026, 10, 25, 2, 59), BER), 1); /* 03:59 CET */
    assert_int_equal(window_allows(w, s_utc(2026, 10, 25, 3, 0), BER), 0);  /* 04:00 CET */
    assert_int_equal(window_open_left(w, s_utc(2026, 10, 24, 23, 0), BER), 4 * 3600);
    assert_int_equal(window_open_left(w, s_utc(2026, 10, 25, 0, 59), BER), 2 * 3600 + 60);
    assert_int_equal(window_next_open(w, s_utc(2026, 10, 24, 12, 0), BER),
                     s_utc(2026, 10, 24, 23, 0));

    /* 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC; 01:00 CET is
     * 00:00 UTC, 04:00 CEST is 02:00 UTC: two hours open */
    assert_int_equal(window_allows(w, s_utc(2026, 3, 28, 23, 59), BER), 0);
    assert_int_equal(window_allows(w, s_utc(2026, 3, 29, 0, 0), BER), 1);
    assert_int_equal(window_allows(w, s_utc(2026, 3, 29, 1, 0), BER), 1);  /* 03:00 CEST */
    assert_int_equal(window_allows(w, s_utc(2026, 3, 29, 1, 59), BER), 1); /* 03:59 CEST */
    assert_int_equal(window_allows(w, s_utc(2026, 3, 29, 2, 0), BER), 0);  /* 04:00 CEST */
    assert_int_equal(window_open_left(w, s_utc(2026, 3, 29, 0, 0), BER), 2 * 3600);
    assert_int_equal(window_next_open(w, s_utc(2026, 3, 28, 12, 0), BER), s_utc(2026, 3, 29, 0, 0));
    /* the next night is back to 01:00 CEST = 23:00 UTC */
    assert_int_equal(window_next_open(w, s_utc(2026, 3, 29, 2, 0), BER), s_utc(2026, 3, 29, 23, 0));
    window_free(w);

    /* a window starting in the hour that does not exist opens when the
     * clocks jump past its start: 03:00 CEST = 01:00 UTC */
    w = s_parse("daily 02:30-04:00");
    assert_int_equal(window_next_open(w, s_utc(2026, 3, 28, 12, 0), BER), s_utc(2026, 3, 29, 1, 0));
    assert_int_equal(window_allows(w, s_utc(2026, 3, 29, 0, 59), BER), 0); /* 01:59 CET */
    window_free(w);

    /* 22:00-05:00 on the night clocks go back is one hour longer */
    w = s_parse("daily 22:00-05:00");
    assert_int_equal(window_open_left(w, s_utc(2026, 10, 24, 20, 0), BER), 8 * 3600);
    assert_int_equal(window_open_left(w, s_utc(2026, 10, 25, 21, 0), BER), 7 * 3600);
    window_free(w);
}

static void test_next_open(void **state)
{
    (void)state;
    window_t *w = s_parse("Mon-Fri 09:00-17:00");
    /* Fri 18:00 EST -> Mon 09:00 EST; seconds do not matter */
    assert_int_equal(window_next_open(w, s_utc(2026, 11, 20, 23, 0), NYC),
                     s_utc(2026, 11, 23, 14, 0));
    assert_int_equal(window_next_open(w, s_utc(2026, 11, 20, 23, 0) + 31, NYC),
                     s_utc(2026, 11, 23, 14, 0));
    /* open now: now itself, to the second */
    time_t now = s_utc(2026, 11, 20, 15, 0) + 17;
    assert_int_equal(window_next_open(w, now, NYC), now);
    window_free(w);

    w = s_parse("Fri 22:00-05:00");
    /* Sat 06:00 Berlin -> next Fri 22:00 = 21:00 UTC */
    assert_int_equal(window_next_open(w, s_utc(2026, 11, 21, 5, 0), BER),
                     s_utc(2026, 11, 27, 21, 0));
    window_free(w);

    /* across a blackout: from the 23rd 03:00 to the 27th 01:00 local */
    w = s_parse("daily 01:00-03:00; !2026-12-24..2026-12-26");
    assert_int_equal(window_next_open(w, s_utc(2026, 12, 23, 2, 0), BER),
                     s_utc(2026, 12, 27, 0, 0));
    window_free(w);

    /* never within 400 days: -1, and quickly */
    w = s_parse("daily 01:00-02:00; hours 5,7,9; Mon 00:01-00:02; !2026-01-01..2028-12-31");
    clock_t c0 = clock();
    assert_int_equal(window_next_open(w, s_utc(2026, 6, 1, 0, 0), BER), (time_t)-1);
    assert_true(clock() - c0 < CLOCKS_PER_SEC);
    /* but it does at day 399 */
    window_free(w);
    w = s_parse("daily 01:00-02:00; !2026-01-01..2027-07-04");
    assert_int_equal(window_next_open(w, s_utc(2026, 6, 1, 0, 0), ""), s_utc(2027, 7, 5, 1, 0));
    window_free(w);
    /* NULL window: now */
    assert_int_equal(window_next_open(NULL, 1234567, BER), 1234567);
    /* far ends of time_t do not overflow or hang */
    w = s_parse("daily 01:00-02:00");
    (void)window_next_open(w, (time_t)INT64_MAX - 100, BER);
    (void)window_next_open(w, (time_t)INT64_MIN + 100, BER);
    (void)window_open_left(w, (time_t)INT64_MAX - 100, BER);
    (void)window_allows(w, (time_t)INT64_MAX, BER);
    window_free(w);
}

static void test_open_left(void **state)
{
    (void)state;
    window_t *w = s_parse("Mon-Fri 22:00-05:00");
    /* Fri 23:00 Berlin: open until Sat 05:00 */
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 20, 22, 0), BER), 6 * 3600);
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 20, 22, 0) + 10, BER), 6 * 3600 - 10);
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 21, 12, 0), BER), 0); /* closed */
    window_free(w);
    /* adjacent clauses make one stretch */
    w = s_parse("Mon 22:00-24:00; Tue 00:00-02:00");
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 23, 22, 0), BER), 3 * 3600);
    window_free(w);
    /* always open: capped at 8 days */
    w = s_parse("daily 00:00-24:00");
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 23, 22, 0), BER), 8 * 86400);
    window_free(w);
    assert_int_equal(window_open_left(NULL, 5, BER), 8 * 86400);
    /* a blackout ends the stretch at local midnight */
    w = s_parse("hours 20,21,22,23,0,1; !2026-11-21");
    assert_int_equal(window_open_left(w, s_utc(2026, 11, 20, 19, 30), BER), 3 * 3600 + 1800);
    window_free(w);
}

static void test_hours_list(void **state)
{
    (void)state;
    const struct {
        const char *spec, *want;
    } c[] = {
        {"Mon-Fri 22:00-05:00", "22,23,0,1,2,3,4"},
        {"hours 23,0,1,2,3,4", "23,0,1,2,3,4"},
        {"daily 01:00-03:00", "1,2"},
        {"daily 22:30-23:15; hours 3,1,3", "22,23,3,1"},
        {"Sat 10:00-11:00; Sun 10:30-12:00", "10,11"},
        {"Fri 22:00-00:00", "22,23"},
        {"daily 23:00-00:01", "23,0"},
        {"", ""},
        {"!2026-12-24", ""},
        {"Sat,Sun 00:00-24:00", ""},
        {"daily 00:00-12:00; daily 12:00-24:00; !2026-12-24", ""},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        window_t *w = s_parse(c[i].spec);
        char out[128];
        window_hours_list(w, out, sizeof out);
        if (strcmp(out, c[i].want) != 0)
            fail_msg("hours_list(\"%s\") = \"%s\", want \"%s\"", c[i].spec, out, c[i].want);
        window_free(w);
    }
    window_t *w = s_parse("Mon-Fri 22:00-05:00");
    char out[7];
    window_hours_list(w, out, sizeof out); /* room for "22,23," only: no cut number */
    assert_string_equal(out, "22,23");
    window_hours_list(w, out, 1);
    assert_string_equal(out, "");
    window_free(w);
    window_hours_list(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_spread(void **state)
{
    (void)state;
    uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0x01};
    assert_int_equal(window_spread(mac, 0), 0);
    assert_int_equal(window_spread(mac, 1), 0);
    /* FNV-1a 64 of the 6 bytes mod spread: the same offset in every
     * process, build and machine (computed once outside) */
    assert_int_equal(window_spread(mac, 3600), 357);
    assert_int_equal(window_spread(mac, 1000), 157);
    static uint8_t hit[3600];
    memset(hit, 0, sizeof hit);
    int distinct = 0;
    for (int i = 0; i < 512; i++) {
        mac[4] = (uint8_t)(i >> 8);
        mac[5] = (uint8_t)i;
        uint32_t s = window_spread(mac, 3600);
        assert_true(s < 3600);
        distinct += !hit[s];
        hit[s] = 1;
        assert_true(window_spread(mac, 7) < 7);
        assert_true(window_spread(mac, UINT32_MAX) < UINT32_MAX);
    }
    /* 512 devices of one OUI over an hour: well spread (a random
     * assignment gives about 480 distinct seconds) */
    assert_true(distinct > 400);
}

static void test_tz_valid(void **state)
{
    (void)state;
    assert_int_equal(window_tz_valid("Europe/Berlin"), 1);
    assert_int_equal(window_tz_valid("America/New_York"), 1);
    assert_int_equal(window_tz_valid("UTC"), 1);
    assert_int_equal(window_tz_valid(""), 1);
    assert_int_equal(window_tz_valid("../etc/passwd"), 0);
    assert_int_equal(window_tz_valid("Europe/../Europe/Berlin"), 0);
    assert_int_equal(window_tz_valid("./Europe/Berlin"), 0);
    assert_int_equal(window_tz_valid("/etc/localtime"), 0);
    assert_int_equal(window_tz_valid("Europe//Berlin"), 0);
    assert_int_equal(window_tz_valid("Europe/Berlin/"), 0);
    assert_int_equal(window_tz_valid("Europe"), 0); /* a directory */
    assert_int_equal(window_tz_valid("Nope/Nowhere"), 0);
    assert_int_equal(window_tz_valid("Europe/Berlin\n"), 0);
    assert_int_equal(window_tz_valid(NULL), 0);
}

static void test_tz_restored(void **state)
{
    (void)state;
    window_t *w = s_parse("daily 01:00-03:00");
    time_t t = s_utc(2026, 11, 20, 1, 30);
    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    assert_int_equal(window_allows(w, t, BER), 1); /* 02:30 in Berlin */
    (void)window_next_open(w, t, NYC);
    (void)window_open_left(w, t, NYC);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    struct tm tm;
    localtime_r(&t, &tm);
    assert_int_equal(tm.tm_hour, 10); /* 01:30 UTC is 10:30 in Tokyo */
    unsetenv("TZ");
    tzset();
    assert_int_equal(window_allows(w, t, ""), 1);
    assert_null(getenv("TZ"));
    setenv("TZ", "", 1);
    assert_int_equal(window_allows(w, t, NYC), 0);
    assert_string_equal(getenv("TZ"), "");
    unsetenv("TZ");
    tzset();
    window_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_allows_berlin_newyork),
        cmocka_unit_test(test_midnight_rule),
        cmocka_unit_test(test_hours_and_blackouts),
        cmocka_unit_test(test_dst_berlin),
        cmocka_unit_test(test_next_open),
        cmocka_unit_test(test_open_left),
        cmocka_unit_test(test_hours_list),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_tz_valid),
        cmocka_unit_test(test_tz_restored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
