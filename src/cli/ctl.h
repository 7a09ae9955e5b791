/*
 * automationsctl: the admin CLI. Shared declarations of its parts: option
 * parsing, the Redis connection, and one file per command group.
 */

#ifndef CTL_H
#define CTL_H

#include <stddef.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <yajl/yajl_gen.h>

#include "am_name.h"

/* exit codes */
#define CTL_OK 0
#define CTL_FAILED 1
#define CTL_USAGE 2

#define CTL_LABEL_MAX 128
#define CTL_KEY_MAX 256
#define CTL_ID_BYTES 8
#define CTL_ID_LEN (2 * CTL_ID_BYTES)
#define CTL_SECRET_BYTES 32

/* the longest secret: "amk_" + project + "_" + 64 hex + NUL */
#define CTL_SECRET_MAX (4 + AM_PROJECT_NAME_MAX + 1 + 2 * CTL_SECRET_BYTES + 1)
#define CTL_ARGS_MAX 64

typedef struct {
    const char   *redis;        /* as am_redis_addr.h reads it */
    const char   *password;     /* NULL: no AUTH */
    char         *password_buf; /* read from --password-file */
    int           db;
    const char   *prefix; /* every key starts with it, "am:" by default */
    int           json;   /* --json: listings as a JSON array of objects */
    redisContext *c;      /* NULL until ctl_connect() */
} ctl_t;

/* One "--name VALUE" (or "--name=VALUE") option of a command. */
typedef struct {
    const char  *name;
    const char **value;
} ctl_opt_t;

/* Prints "automationsctl: <message>" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ctl_util.c: arguments */
int ctl_parse(
    int argc, char **argv, const ctl_opt_t *opts, char **pos, int maxpos);

int ctl_name_check(const char *what, const char *name);

int ctl_label_check(const char *label);

int ctl_scopes_normalize(
    const char *what, const char *in, char *out, size_t size);

int ctl_bad_usage(
    const char *group, const char *const *subs, char **pos, int n);

void ctl_commas(char *s);

int ctl_new_id(char *id);

int ctl_new_secret(const char *prefix, char *out, char *digest);

/* ctl_redis.c, ctl_list.c: Redis */
int ctl_connect(ctl_t *ctl);

void ctl_disconnect(ctl_t *ctl);

int ctl_key(const ctl_t *ctl, char *buf, const char *tag, const char *rest);

redisReply *ctl_command(ctl_t *ctl, int argc, const char **argv);

redisReply *ctl_eval(
    ctl_t *ctl, const char *name, int nkeys, int argc, const char **argv);

void ctl_settle(ctl_t *ctl);

int ctl_list(
    ctl_t *ctl, const char *index, const char *record, const char *what);

/* ctl_commands.c: the table of commands, their usage and help */
void ctl_commands_usage(FILE *f);

int ctl_group_known(const char *group);

void ctl_command_help(FILE *f, const char *group, int argc, char **argv);

int ctl_command_json_check(const char *group, int argc, char **argv);

/* ctl_output.c: listings, as text under a header line or as JSON */
void ctl_header(const char *const *columns);

yajl_gen ctl_json_open(void);

int ctl_json_string(yajl_gen g, const char *name, const char *value);

int ctl_json_words(yajl_gen g, const char *name, const char *words);

int ctl_json_close(yajl_gen g);

/* the command groups, argv[0] being the subcommand */
int ctl_project(ctl_t *ctl, int argc, char **argv);

int ctl_apikey(ctl_t *ctl, int argc, char **argv);

int ctl_tokenpair(ctl_t *ctl, int argc, char **argv);

int ctl_jwt(int argc, char **argv);

int ctl_webhook(ctl_t *ctl, int argc, char **argv);

int ctl_execution(ctl_t *ctl, int argc, char **argv);

void ctl_usage(int to_stderr);

#endif
