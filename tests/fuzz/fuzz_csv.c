/* fuzz_csv.c: libFuzzer target for the device import file (cli_csv_parse,
 * controller/cli_csv.h), which the CLI reads from whatever file an operator
 * names. The input is the file's bytes, handed over in a buffer of exactly
 * that size (no NUL after it, so a read past the end is caught). Asserts
 * the contract: 0 with an array of rows each carrying "line", "mac" and
 * "site", or an error with a one-line reason and no rows.
 *
 * Build and run: `make fuzz` (clang), or replayed over tests/fuzz/corpus/
 * by `make test` (tests/fuzz/replay_main.c).
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    json_t *rows = NULL;
    char err[256];
    err[0] = '\0';
    int rc = cli_csv_parse(text, size, &rows, err, sizeof err);
    if (rc == 0) {
        assert(json_is_array(rows));
        size_t i;
        json_t *row;
        int last = 0;
        json_array_foreach(rows, i, row)
        {
            json_t *line = json_object_get(row, "line");
            assert(json_is_integer(line));
            /* file order; a lone CR ends a record, so two can share a line */
            assert(json_integer_value(line) >= last && json_integer_value(line) >= 1);
            last = (int)json_integer_value(line);
            assert(json_is_string(json_object_get(row, "mac")));
            assert(json_is_string(json_object_get(row, "site")));
        }
        json_decref(rows);
    } else {
        assert(rc == -EINVAL || rc == -ENOMEM);
        assert(err[0] != '\0' && strchr(err, '\n') == NULL);
        if (rows != NULL)
            json_decref(rows); /* not promised either way; never leaked */
    }
    free(text);
    return 0;
}
