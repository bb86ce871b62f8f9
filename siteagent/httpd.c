/* httpd.c: placeholder until the service is written; refuses to start. */
#include <errno.h>

#include "log.h"
#include "services.h"

int httpd_start(struct agent *a, const struct svc_opts *o)
{
    (void)a;
    (void)o;
    log_error("httpd.unavailable", "reason=\"not built yet\"");
    return -ENOSYS;
}
