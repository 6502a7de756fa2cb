/*
 * mailctl init - create a configuration directory.
 *
 * --sandbox makes a self-contained instance under DIR that runs as the
 * invoking user (docs/architecture.md, "Sandbox"): main.cf, master.cf,
 * users and aliases with their tables, the queue, the mailbox base, the
 * log directory and a self-signed certificate made with the OpenSSL API
 * (no shell, no external program). Without --sandbox it writes a system
 * configuration with the compiled-in defaults and the standard ports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "dict.h"
#include "mailctl.h"
#include "mymalloc.h"
#include "queue.h"
#include "vuser.h"

struct init_opts {
    bool sandbox;
    const char *domain;
    long offset;
    const char *address;
};

static int init_mkdir(const char *path, int mode)
{
    if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST) {
        fprintf(stderr, "mailctl: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* mkdir -p */
static int init_mkdirs(const char *path, int mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof(buf)) {
        fprintf(stderr, "mailctl: %s: path too long\n", path);
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (init_mkdir(buf, 0755) < 0)
                return -1;
            *p = '/';
        }
    }
    return init_mkdir(buf, mode);
}

/* Append a path to main.cf text with '$' escaped as "$$". */
static void init_put_path(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '$')
            strbuf_putc(out, '$');
        strbuf_putc(out, *s);
    }
}

/* The directory holding this program (the build's bin/ in a sandbox). */
static int init_self_dir(struct strbuf *out)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    char *slash;

    if (n <= 0) {
        fprintf(stderr, "mailctl: cannot find my own directory: %s\n", strerror(errno));
        return -1;
    }
    buf[n] = 0;
    slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return -1;
    *slash = 0;
    strbuf_puts(out, buf);
    return 0;
}

static bool init_domain_ok(const char *d)
{
    size_t len = strlen(d);

    if (len == 0 || len > 200 || d[0] == '.' || d[0] == '-' || d[len - 1] == '.')
        return false;
    for (; *d; d++)
        if (!(*d >= 'a' && *d <= 'z') && !(*d >= 'A' && *d <= 'Z') && !(*d >= '0' && *d <= '9') &&
            *d != '.' && *d != '-')
            return false;
    return true;
}

/* "127.0.0.1:port" or "[::1]:port" */
static void init_listen(struct strbuf *out, const char *addr, long port)
{
    char buf[128];

    if (strchr(addr, ':'))
        snprintf(buf, sizeof(buf), "[%s]:%ld", addr, port);
    else
        snprintf(buf, sizeof(buf), "%s:%ld", addr, port);
    strbuf_printf(out, "%-18s", buf);
}

/* ---------------------------------------------------------------- TLS */

static int init_certificate(const char *dir, const char *host, const char *address)
{
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    X509_NAME *name;
    X509V3_CTX ctx;
    struct strbuf path = STRBUF_INIT, san = STRBUF_INIT;
    unsigned char serial[8];
    BIGNUM *bn = NULL;
    FILE *f = NULL;
    int fd, rc = -1;
    static const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
        {NID_subject_alt_name, NULL},
    };

    strbuf_reset(&san);
    strbuf_printf(&san, "DNS:%s,DNS:localhost", host);
    if (address && *address) {
        unsigned char tmp[16];

        if (inet_pton(AF_INET, address, tmp) == 1 || inet_pton(AF_INET6, address, tmp) == 1)
            strbuf_printf(&san, ",IP:%s", address);
    }
    pkey = EVP_RSA_gen(2048);
    x = X509_new();
    bn = BN_new();
    if (pkey == NULL || x == NULL || bn == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto out;
    serial[0] &= 0x7f;
    if (BN_bin2bn(serial, sizeof(serial), bn) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    if (!X509_set_version(x, 2) || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400) || !X509_set_pubkey(x, pkey))
        goto out;
    name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char *)"tegami sandbox", -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name))
        goto out;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value ? exts[i].value : san.data);

        if (ext == NULL)
            goto out;
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (!X509_sign(x, pkey, EVP_sha256()))
        goto out;

    strbuf_printf(&path, "%s/tls/key.pem", dir);
    (void)unlink(path.data);
    fd = open(path.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "mailctl: create %s: %s\n", path.data, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "mailctl: write %s failed\n", path.data);
        goto out;
    }
    f = NULL;
    strbuf_reset(&path);
    strbuf_printf(&path, "%s/tls/cert.pem", dir);
    (void)unlink(path.data);
    fd = open(path.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "mailctl: create %s: %s\n", path.data, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    if (!PEM_write_X509(f, x) || fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "mailctl: write %s failed\n", path.data);
        goto out;
    }
    f = NULL;
    rc = 0;
out:
    if (rc < 0 && path.len == 0)
        fprintf(stderr, "mailctl: cannot make a self-signed certificate (OpenSSL error)\n");
    if (f)
        fclose(f);
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pkey);
    strbuf_release(&path);
    strbuf_release(&san);
    return rc;
}

/* ---------------------------------------------------------------- init */

static int init_parse(int argc, char **argv, struct init_opts *o)
{
    o->sandbox = false;
    o->domain = NULL;
    o->offset = -1;
    o->address = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sandbox") == 0) {
            o->sandbox = true;
        } else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc) {
            o->domain = argv[++i];
        } else if (strcmp(argv[i], "--port-offset") == 0 && i + 1 < argc) {
            char *end;

            errno = 0;
            o->offset = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || o->offset < 0 || o->offset > 65535 - 995) {
                fprintf(stderr, "mailctl: --port-offset: expected 0..%d\n", 65535 - 995);
                return -1;
            }
        } else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
            o->address = argv[++i];
        } else {
            fprintf(stderr, "mailctl: init: unknown argument \"%s\"\n", argv[i]);
            mailctl_usage();
        }
    }
    if (o->domain == NULL)
        o->domain = "example.test";
    if (!init_domain_ok(o->domain)) {
        fprintf(stderr, "mailctl: --domain: \"%s\" is not a domain name\n", o->domain);
        return -1;
    }
    if (o->address) {
        unsigned char tmp[16];

        if (inet_pton(AF_INET, o->address, tmp) != 1 && inet_pton(AF_INET6, o->address, tmp) != 1) {
            fprintf(stderr, "mailctl: --address: \"%s\" is not a numeric IP address\n", o->address);
            return -1;
        }
    }
    if (o->sandbox) {
        if (o->offset < 0)
            o->offset = 10000;
        if (o->address == NULL)
            o->address = "127.0.0.1";
    } else {
        if (o->offset < 0)
            o->offset = 0;
    }
    return 0;
}

/*
 * The certificate that init makes (DIR/tls). Replace both lines to use a
 * real one (README: certbot's fullchain.pem and privkey.pem); pop3d uses
 * the same files unless pop3d_tls_cert_file/pop3d_tls_key_file say otherwise.
 */
static void init_tls_params(struct strbuf *cf, const char *dir)
{
    strbuf_puts(cf, "# TLS (STARTTLS, 465, STLS, 995): certificate chain and key, PEM.\n"
                    "smtpd_tls_cert_file = ");
    init_put_path(cf, dir);
    strbuf_puts(cf, "/tls/cert.pem\nsmtpd_tls_key_file = ");
    init_put_path(cf, dir);
    strbuf_puts(cf, "/tls/key.pem\n");
}

static void init_main_cf(struct strbuf *cf, const struct init_opts *o, const char *dir,
                         const char *bindir)
{
    struct passwd *pw = getpwuid(getuid());

    if (o->sandbox) {
        strbuf_puts(cf, "# tegami sandbox (mailctl init --sandbox). See docs/config.md.\n"
                        "# Everything runs as the invoking user; listeners are on loopback.\n");
        strbuf_puts(cf, "sandbox = yes\n");
        strbuf_printf(cf, "myhostname = mail.%s\n", o->domain);
        strbuf_printf(cf, "mydomain = %s\n", o->domain);
        strbuf_puts(cf, "mydestination = $mydomain, $myhostname, localhost\n");
        strbuf_puts(cf, "queue_directory = ");
        init_put_path(cf, dir);
        strbuf_puts(cf, "/queue\nvirtual_mailbox_base = ");
        init_put_path(cf, dir);
        strbuf_puts(cf, "/mail\nmaillog_file = ");
        init_put_path(cf, dir);
        strbuf_puts(cf, "/log/maillog\ndata_directory = ");
        init_put_path(cf, dir);
        strbuf_puts(cf, "/data\ndaemon_directory = ");
        init_put_path(cf, bindir);
        strbuf_putc(cf, '\n');
        init_tls_params(cf, dir);
        if (pw && pw->pw_name)
            strbuf_printf(cf, "mail_owner = %s\n", pw->pw_name);
    } else {
        strbuf_puts(cf, "# tegami main.cf: only what differs from the compiled-in defaults.\n"
                        "# `mailctl check` validates it. See docs/config.md.\n");
        if (o->domain && strcmp(o->domain, "example.test") != 0) {
            strbuf_printf(cf, "#myhostname = mail.%s\n", o->domain);
            strbuf_printf(cf, "mydomain = %s\n", o->domain);
        }
        strbuf_puts(cf, "daemon_directory = ");
        init_put_path(cf, bindir);
        strbuf_putc(cf, '\n');
        init_tls_params(cf, dir);
    }
}

static void init_master_cf(struct strbuf *mc, const struct init_opts *o)
{
    const char *addr = o->address;

    strbuf_puts(mc, "# service          type  private unpriv chroot maxproc command\n");
    /* SMTP (MX), submission (RFC 6409), implicit-TLS submission (RFC 8314), POP3, POP3S,
     * IMAP, IMAPS. */
    static const struct {
        long port;
        const char *command;
        const char *overrides;
    } services[] = {
        {25, "smtpd", ""},
        {587, "smtpd", "  -o smtpd_submission=yes\n"},
        {465, "smtpd", "  -o smtpd_tls_wrappermode=yes\n  -o smtpd_submission=yes\n"},
        {110, "pop3d", ""},
        {995, "pop3d", "  -o pop3d_tls_wrappermode=yes\n"},
        {143, "imapd", ""},
        {993, "imapd", "  -o imapd_tls_wrappermode=yes\n"},
    };
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (addr)
            init_listen(mc, addr, o->offset + services[i].port);
        else
            strbuf_printf(mc, "%-18ld", o->offset + services[i].port);
        strbuf_printf(mc, " inet  n       -      n      -       %s\n%s", services[i].command,
                      services[i].overrides);
    }
    strbuf_puts(mc, "qmgr               fifo  n       -      n      1       qmgr\n"
                    "pickup             fifo  n       -      n      1       pickup\n"
                    "local              unix  -       -      n      -       local\n"
                    "smtp               unix  -       -      n      100     smtp\n"
                    "anvil              unix  -       -      n      1       anvil\n");
}

int mailctl_init(int argc, char **argv)
{
    struct init_opts o;
    struct strbuf path = STRBUF_INIT, text = STRBUF_INIT, bindir = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *dir = config_directory();
    struct stat st;
    int rc = MAILCTL_ERROR;
    long n;

    if (init_parse(argc, argv, &o) < 0)
        return MAILCTL_USAGE;
    if (init_self_dir(&bindir) < 0)
        return MAILCTL_ERROR;
    if (init_mkdirs(dir, 0755) < 0)
        return MAILCTL_ERROR;
    strbuf_printf(&path, "%s/main.cf", dir);
    if (lstat(path.data, &st) == 0) {
        fprintf(stderr, "mailctl: %s already exists; not overwriting\n", path.data);
        goto out;
    }

    /* main.cf and master.cf */
    init_main_cf(&text, &o, dir, bindir.data);
    if (mailctl_write_file(path.data, text.data, 0644, true) < 0)
        goto out;
    strbuf_reset(&text);
    strbuf_reset(&path);
    strbuf_printf(&path, "%s/master.cf", dir);
    init_master_cf(&text, &o);
    if (mailctl_write_file(path.data, text.data, 0644, true) < 0)
        goto out;

    strbuf_reset(&err);
    if (config_load(&err) < 0) {
        mailctl_print_lines(err.data);
        goto out;
    }

    /* Directories. */
    if (o.sandbox) {
        static const char *const subdirs[] = {"log", "data", "mail", "tls"};

        for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
            strbuf_reset(&path);
            strbuf_printf(&path, "%s/%s", dir, subdirs[i]);
            if (init_mkdir(path.data, strcmp(subdirs[i], "tls") == 0 ? 0700 : 0755) < 0)
                goto out;
        }
    } else {
        strbuf_reset(&path);
        strbuf_printf(&path, "%s/tls", dir);
        if (init_mkdir(path.data, 0700) < 0)
            goto out;
    }
    strbuf_reset(&err);
    if (init_mkdirs(config_str("queue_directory"), 0755) < 0 ||
        queue_make_dirs(config_str("queue_directory"), o.sandbox, &err) < 0) {
        fprintf(stderr, "mailctl: queue directory %s: %s\n", config_str("queue_directory"),
                err.data);
        if (o.sandbox)
            goto out;
        fprintf(stderr, "mailctl: (create it later as root: mailctl start makes it)\n");
    }
    if (o.sandbox && init_mkdirs(config_str("virtual_mailbox_base"), 0755) < 0)
        goto out;

    /* users and aliases, with their tables. */
    strbuf_reset(&path);
    strbuf_printf(&path, "%s/users", dir);
    if (lstat(path.data, &st) < 0 &&
        mailctl_write_file(path.data,
                           "# tegami virtual users, one \"name:password-hash\" per line.\n"
                           "# Edit with `mailctl user add|passwd|del NAME`, not by hand.\n",
                           0600, true) < 0)
        goto out;
    strbuf_reset(&err);
    if (vuser_rebuild(&err) < 0) {
        fprintf(stderr, "mailctl: users table: %s\n", err.data);
        goto out;
    }
    strbuf_reset(&path);
    strbuf_printf(&path, "%s/aliases", dir);
    if (lstat(path.data, &st) < 0 &&
        mailctl_write_file(path.data,
                           "# tegami aliases: \"name: target, target\" per line\n"
                           "# (a local user, a full address, or another alias).\n"
                           "# Run `mailctl newaliases` after editing.\n"
                           "#postmaster: alice\n",
                           0644, true) < 0)
        goto out;
    strbuf_reset(&err);
    strbuf_reset(&text);
    strbuf_printf(&text, "hash:%s", path.data);
    n = dict_build(text.data, DICT_FORMAT_ALIASES, &err);
    if (n < 0) {
        fprintf(stderr, "mailctl: aliases table: %s\n", err.data);
        goto out;
    }

    /* TLS */
    if (init_certificate(dir, config_str("myhostname"), o.address) < 0)
        goto out;

    if (o.sandbox) {
        printf("tegami sandbox created in %s\n"
               "  domain %s, host %s, mail for user@%s\n"
               "  SMTP  %s port %ld    POP3  %s port %ld\n"
               "  submission port %ld (STARTTLS + AUTH), smtps port %ld, pop3s port %ld\n"
               "  IMAP  %s port %ld (STARTTLS), imaps port %ld\n"
               "  add a user:  echo PASSWORD | %s/mailctl -c %s user add NAME\n"
               "  start:       %s/mailctl -c %s start\n"
               "  connect:     swaks --server %s --port %ld --to NAME@%s\n"
               "  stop:        %s/mailctl -c %s stop\n",
               dir, o.domain, config_str("myhostname"), o.domain, o.address, o.offset + 25,
               o.address, o.offset + 110, o.offset + 587, o.offset + 465, o.offset + 995, o.address,
               o.offset + 143, o.offset + 993, bindir.data, dir, bindir.data, dir, o.address,
               o.offset + 25, o.domain, bindir.data, dir);
    } else {
        printf("tegami configuration created in %s\n"
               "  check:  %s/mailctl -c %s check\n"
               "  start:  %s/mailctl -c %s start\n",
               dir, bindir.data, dir, bindir.data, dir);
    }
    rc = MAILCTL_OK;
out:
    strbuf_release(&path);
    strbuf_release(&text);
    strbuf_release(&bindir);
    strbuf_release(&err);
    return rc;
}
