/* files.c: placeholder until the resolver is written. */
#include <errno.h>

#include "files.h"
#include "log.h"
#include "services.h"

int files_start(struct agent *a, const struct svc_opts *o)
{
    (void)a;
    (void)o;
    return -ENOSYS;
}
