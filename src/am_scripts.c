#include <string.h>

#include <openssl/evp.h>

#include "am_scripts.h"

int
am_scripts_init(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     md[EVP_MAX_MD_SIZE];
    unsigned int      n, i;
    am_script_t      *s;

    for (s = am_scripts; s->name; s++) {
        if (EVP_Digest(s->body, s->len, md, &n, EVP_sha1(), NULL) != 1) {
            return -1;
        }

        for (i = 0; i < n && i < 20; i++) {
            s->sha1[2 * i] = hex[md[i] >> 4];
            s->sha1[2 * i + 1] = hex[md[i] & 0xf];
        }

        s->sha1[40] = '\0';
    }

    return 0;
}

am_script_t *
am_script_find(const char *name)
{
    am_script_t *s;

    for (s = am_scripts; s->name; s++) {
        if (strcmp(s->name, name) == 0) {
            return s;
        }
    }

    return NULL;
}
