/*
 * Listing of credentials (API keys, token pairs): an index hash maps each
 * id to the digest that names the record. Reading needs no script: nothing
 * is changed, and a record revoked meanwhile is simply not shown.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* HMGET fields of a record, in the order of a listing line */
enum { CTL_F_ID, CTL_F_WHAT, CTL_F_CREATED, CTL_F_NAME, CTL_F_N };

static int
ctl_row_cmp(const void *a, const void *b)
{
    redisReply *x = *(redisReply *const *) a;
    redisReply *y = *(redisReply *const *) b;
    int         rc;

    rc = strcmp(x->element[CTL_F_CREATED]->str, y->element[CTL_F_CREATED]->str);
    if (rc != 0) {
        return rc;
    }

    return strcmp(x->element[CTL_F_ID]->str, y->element[CTL_F_ID]->str);
}

/* 1 when every field of an HMGET reply is present */
static int
ctl_row_complete(redisReply *r)
{
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != CTL_F_N) {
        return 0;
    }

    for (i = 0; i < CTL_F_N; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            return 0;
        }
    }

    return 1;
}

/*
 * Sends one pipelined HMGET per index entry and keeps the complete rows in
 * rows; returns their number, or -1 on a connection error.
 */
static long
ctl_fetch(ctl_t *ctl, redisReply *index, const char *record, const char *what,
    redisReply **rows)
{
    redisReply *r;
    size_t      i;
    long        n;
    int         rc;

    for (i = 1; i < index->elements; i += 2) {
        redisAppendCommand(ctl->c, "HMGET %s%s id %s created_at name", record,
            index->element[i]->str, what);
    }

    n = 0;
    rc = 0;

    for (i = 1; i < index->elements; i += 2) {
        if (redisGetReply(ctl->c, (void **) &r) != REDIS_OK) {
            ctl_error("redis at %s: %s", ctl->redis, ctl->c->errstr);
            rc = -1;
            break;
        }

        if (ctl_row_complete(r)) {
            rows[n++] = r;
        } else {
            freeReplyObject(r);
        }
    }

    if (rc != 0) {
        while (n > 0) {
            freeReplyObject(rows[--n]);
        }
        return -1;
    }

    return n;
}

/*
 * Prints the records of an index one per line, sorted by created_at then
 * id: "id WHAT created_at name". WHAT (scopes or projects) is a
 * space-separated list shown with commas, so that only the name, last,
 * may contain spaces; an empty name is left out with its space.
 */
int
ctl_list(ctl_t *ctl, const char *index, const char *record, const char *what)
{
    const char *argv[2] = {"HGETALL", index};
    redisReply *r, **rows;
    long        n, i;

    r = ctl_command(ctl, 2, argv);
    if (r == NULL) {
        return -1;
    }

    rows = malloc((r->elements / 2 + 1) * sizeof(redisReply *));
    if (rows == NULL) {
        ctl_error("out of memory");
        freeReplyObject(r);
        return -1;
    }

    n = ctl_fetch(ctl, r, record, what, rows);
    freeReplyObject(r);

    if (n < 0) {
        free(rows);
        return -1;
    }

    qsort(rows, (size_t) n, sizeof(redisReply *), ctl_row_cmp);

    for (i = 0; i < n; i++) {
        ctl_commas(rows[i]->element[CTL_F_WHAT]->str);
        printf("%s %s %s%s%s\n", rows[i]->element[CTL_F_ID]->str,
            rows[i]->element[CTL_F_WHAT]->str,
            rows[i]->element[CTL_F_CREATED]->str,
            rows[i]->element[CTL_F_NAME]->len ? " " : "",
            rows[i]->element[CTL_F_NAME]->str);
        freeReplyObject(rows[i]);
    }

    free(rows);
    return 0;
}
