#include "login.h"

#include <string.h>

#include "mymalloc.h"
#include "recipient.h"

char *login_user_name(const char *login)
{
    char *name = mystrdup(login);
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    char *at = strrchr(name, '@');
    if (at) {
        if (at[1] == '\0' || !recipient_domain_is_local(at + 1)) {
            myfree(name);
            return NULL;
        }
        *at = '\0';
    }
    if (!vuser_name_valid(name)) {
        myfree(name);
        return NULL;
    }
    return name;
}

void login_verify_dummy(const char *password)
{
    static char *dummy_hash;
    if (dummy_hash == NULL) {
        struct strbuf hash = STRBUF_INIT, err = STRBUF_INIT;
        int r = vuser_hash("tegami-no-such-user", &hash, &err);
        strbuf_release(&err);
        if (r < 0) {
            strbuf_release(&hash);
            return;
        }
        dummy_hash = strbuf_detach(&hash, NULL);
    }
    struct vuser dummy = {(char *)"", dummy_hash, (char *)""};
    (void)vuser_verify(&dummy, password);
}

int login_verify(const char *name, const char *password, struct vuser *u, const char **why_r,
                 struct strbuf *err)
{
    memset(u, 0, sizeof(*u));
    if (name == NULL || name[0] == '\0') {
        login_verify_dummy(password);
        *why_r = "invalid login name";
        return 0;
    }
    int found = vuser_lookup(name, u, err);
    if (found < 0)
        return -1;
    if (found == 0) {
        login_verify_dummy(password);
        *why_r = "unknown user";
        return 0;
    }
    if (!vuser_verify(u, password)) {
        vuser_release(u);
        *why_r = "wrong password";
        return 0;
    }
    return 1;
}
