/* store_int.h: the store's struct, shared by db/store*.c only. Nothing outside
 * db/ includes this. */
#ifndef FF_STORE_INT_H
#define FF_STORE_INT_H

#include <sqlite3.h>

#include "sql.h"
#include "store.h"

struct store {
    sqlite3 *db;
    sql_cache_t *cache; /* hot statements (sql.h), finalized before db closes */
};

#endif
