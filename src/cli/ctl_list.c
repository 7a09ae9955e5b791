/*
 * Listing of credentials (API keys, token pairs): an index hash maps each
 * id to the digest that names the record. Reading needs no script: nothing
 * is changed, and a record revoked meanwhile is simply not shown.
 */

#include <ctype.h>
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

/* The rows as text under a header line, none when there are no rows. */
static void
ctl_list_text(redisReply **rows, long n, const char *what)
{
    const char *columns[] = {"ID", NULL, "CREATED_AT", "NAME", NULL};
    char        upper[32];
    size_t      i;
    long        r;

    for (i = 0; what[i] != '\0' && i + 1 < sizeof(upper); i++) {
        upper[i] = (char) toupper((unsigned char) what[i]);
    }
    upper[i] = '\0';
    columns[1] = upper;

    if (n > 0) {
        ctl_header(columns);
    }

    for (r = 0; r < n; r++) {
        ctl_commas(rows[r]->element[CTL_F_WHAT]->str);
        printf("%s %s %s%s%s\n", rows[r]->element[CTL_F_ID]->str,
            rows[r]->element[CTL_F_WHAT]->str,
            rows[r]->element[CTL_F_CREATED]->str,
            rows[r]->element[CTL_F_NAME]->len ? " " : "",
            rows[r]->element[CTL_F_NAME]->str);
    }
}

/* The rows as a JSON array of objects, WHAT as an array of words. */
static int
ctl_list_json(redisReply **rows, long n, const char *what)
{
    yajl_gen g;
    long     r;

    g = ctl_json_open();
    if (g == NULL) {
        return -1;
    }

    for (r = 0; r < n; r++) {
        if (yajl_gen_map_open(g) != yajl_gen_status_ok
            || ctl_json_string(g, "id", rows[r]->element[CTL_F_ID]->str) != 0
            || ctl_json_words(g, what, rows[r]->element[CTL_F_WHAT]->str) != 0
            || ctl_json_string(
                   g, "created_at", rows[r]->element[CTL_F_CREATED]->str)
                   != 0
            || ctl_json_string(g, "name", rows[r]->element[CTL_F_NAME]->str)
                   != 0
            || yajl_gen_map_close(g) != yajl_gen_status_ok) {
            yajl_gen_free(g);
            return -1;
        }
    }

    return ctl_json_close(g);
}

/*
 * Prints the records of an index sorted by created_at then id, as text
 * ("ID WHAT CREATED_AT NAME", see ctl_list_text) or JSON. WHAT (scopes or
 * projects) is a space-separated list shown with commas, so that only the
 * name, last, may contain spaces; an empty name is left out with its
 * space.
 */
int
ctl_list(ctl_t *ctl, const char *index, const char *record, const char *what)
{
    const char *argv[2] = {"HGETALL", index};
    redisReply *r, **rows;
    long        n, i;
    int         rc;

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

    rc = 0;

    if (ctl->json) {
        rc = ctl_list_json(rows, n, what);
    } else {
        ctl_list_text(rows, n, what);
    }

    for (i = 0; i < n; i++) {
        freeReplyObject(rows[i]);
    }

    free(rows);
    return rc;
}
