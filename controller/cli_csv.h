/* cli_csv.h: the device import file. CSV (RFC 4180 quoting, parsed with
 * libcsv in strict mode) with a required header line naming the columns:
 * mac and site are required, model, serial, tags, ip and class optional, in any order,
 * case-insensitive; no other column and no column twice. Blank lines are
 * skipped; every record must have as many fields as the header. A '#' at
 * the start of a line does NOT make a comment (a MAC never starts with '#',
 * so such a line fails loudly instead of vanishing).
 */
#ifndef FF_CLI_CSV_H
#define FF_CLI_CSV_H

#include <jansson.h>
#include <stddef.h>

/* Parses text (len bytes) into a JSON array of rows {"line":N, "mac":..,
 * "site":.., "model":.., "serial":.., "tags":.., "ip":.., "class":..}
 * (optional columns only when present), N being the line the record starts
 * on. MACs and IP addresses are checked here so the operator hears about
 * typos before anything is sent; everything else is checked by the
 * controller. An empty ip or class field means none.
 * 0 or -EINVAL/-ENOMEM with "line N: reason" (or a file-level reason) in err. */
int cli_csv_parse(const char *text, size_t len, json_t **rows, char *err, size_t errlen);

#endif
