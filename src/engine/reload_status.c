/* The result of the last load or reload of the rules, kept for `saasd admin rules`: when, and
 * each "file:line: message" when it failed (the old generation then keeps serving). */
#include "engine/engine_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void engine_note_problem(struct engine *e, const char *problem)
{
    /* only gen_build calls this, serialised by reload_mu (or before the engine is shared) */
    size_t old = e->building_problems ? strlen(e->building_problems) : 0, add = strlen(problem);
    if (old > 64 * 1024)
        return; /* enough to show what is wrong */
    char *p = realloc(e->building_problems, old + add + 2);
    if (!p)
        return;
    memcpy(p + old, problem, add);
    p[old + add] = '\n';
    p[old + add + 1] = 0;
    e->building_problems = p;
}

void engine_note_load(struct engine *e, int rc)
{
    char *problems = e->building_problems;
    e->building_problems = NULL;
    if (rc == 0) {
        free(problems);
        problems = NULL;
    } else if (problems) {
        problems[strlen(problems) - 1] = 0; /* the last '\n' */
    }
    pthread_mutex_lock(&e->metrics_mu);
    free(e->last_load_problems);
    e->last_load_problems = problems;
    e->last_load_rc = rc;
    e->last_load_at = (long long)time(NULL);
    pthread_mutex_unlock(&e->metrics_mu);
}

void engine_load_status_fill(struct engine *e, struct engine_info *info)
{
    pthread_mutex_lock(&e->metrics_mu);
    info->last_load_rc = e->last_load_rc;
    info->last_load_at = e->last_load_at;
    info->last_load_problems = e->last_load_problems ? strdup(e->last_load_problems) : NULL;
    pthread_mutex_unlock(&e->metrics_mu);
}

void engine_load_status_free(struct engine *e)
{
    free(e->last_load_problems);
    free(e->building_problems);
    e->last_load_problems = e->building_problems = NULL;
}
