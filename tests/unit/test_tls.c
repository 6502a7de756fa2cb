/*
 * Unit tests for libmail/tls.c: a real handshake over a socketpair (the
 * server in a forked child), with certificates generated here; protocol
 * parsing; bad configurations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "stream.h"
#include "strbuf.h"
#include "tls.h"

static char tmpdir[4096];
static char ec_cert[4200], ec_key[4200], rsa_cert[4200], rsa_key[4200], ticket_key[4200];

/* A self-signed certificate for "localhost" with the given key. */
static void make_cert(EVP_PKEY *pkey, const char *cert_path, const char *key_path)
{
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_true(PEM_write_X509(f, x));
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_true(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    X509_free(x);
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TEGAMI_TEST_TMP");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    mkdir(base, 0755);
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_tls.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(ec_cert, sizeof(ec_cert), "%s/ec-cert.pem", tmpdir);
    snprintf(ec_key, sizeof(ec_key), "%s/ec-key.pem", tmpdir);
    snprintf(rsa_cert, sizeof(rsa_cert), "%s/rsa-cert.pem", tmpdir);
    snprintf(rsa_key, sizeof(rsa_key), "%s/rsa-key.pem", tmpdir);
    snprintf(ticket_key, sizeof(ticket_key), "%s/ticket.key", tmpdir);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    if (ec == NULL || rsa == NULL)
        return -1;
    make_cert(ec, ec_cert, ec_key);
    make_cert(rsa, rsa_cert, rsa_key);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *files[] = {ec_cert, ec_key, rsa_cert, rsa_key, ticket_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(tmpdir);
    return 0;
}

static struct tls_config server_config(void)
{
    struct tls_config c;
    memset(&c, 0, sizeof(c));
    c.cert_file = ec_cert;
    c.key_file = ec_key;
    c.cert2_file = rsa_cert;
    c.key2_file = rsa_key;
    c.protocols = ">=TLSv1.2";
    c.cipherlist = "ECDHE+AESGCM:ECDHE+CHACHA20";
    c.session_timeout = 3600;
    c.session_tickets = true;
    c.ticket_key_file = ticket_key;
    return c;
}

/*
 * The server side in a child: handshake, echo one line with the TLS
 * description, exit 0 on success. Exit codes tell the parent what failed.
 */
static void run_server(int fd, const char *protocols)
{
    struct strbuf err = STRBUF_INIT, line = STRBUF_INIT;
    struct tls_config cfg = server_config();
    cfg.protocols = protocols;
    struct tls_ctx *ctx = tls_server_ctx_new(&cfg, &err);
    if (ctx == NULL)
        _exit(2);
    struct stream *s = stream_fdopen(fd);
    stream_set_timeout(s, 10000);
    struct tls_conn *c = tls_conn_start(ctx, s, true, NULL, 10000, &err);
    if (c == NULL)
        _exit(3);
    if (stream_read_line(s, &line, 1024) != STREAM_OK)
        _exit(4);
    strbuf_reset(&err);
    tls_conn_describe(c, &err);
    stream_printf(s, "echo %.*s [%s]\r\n", (int)line.len - 2, line.data, strbuf_str(&err));
    if (stream_flush(s) < 0)
        _exit(5);
    tls_conn_free(&c);
    stream_free(&s);
    tls_ctx_free(&ctx);
    _exit(0);
}

static pid_t fork_server(int *client_fd, const char *protocols)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        run_server(sv[1], protocols);
    }
    close(sv[1]);
    *client_fd = sv[0];
    return pid;
}

static int wait_server(pid_t pid)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static void test_handshake_and_data_over_socketpair(void **state)
{
    (void)state;
    int fd;
    pid_t pid = fork_server(&fd, ">=TLSv1.2");
    struct strbuf err = STRBUF_INIT, line = STRBUF_INIT;
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.protocols = ">=TLSv1.2";
    cfg.ca_file = ec_cert; /* the server picks ECDSA for a client that offers it */
    struct tls_ctx *ctx = tls_client_ctx_new(&cfg, &err);
    assert_non_null(ctx);
    struct stream *s = stream_fdopen(fd);
    stream_set_timeout(s, 10000);
    struct tls_conn *c = tls_conn_start(ctx, s, false, "localhost", 10000, &err);
    if (c == NULL)
        fail_msg("client handshake: %s", strbuf_str(&err));
    assert_true(tls_conn_verified(c));
    assert_string_equal(tls_conn_version(c), "TLSv1.3");
    stream_puts(s, "hello\r\n");
    assert_int_equal(stream_flush(s), 0);
    assert_int_equal(stream_read_line(s, &line, 1024), STREAM_OK);
    assert_non_null(strstr(line.data, "echo hello [TLSv1.3 with cipher TLS_"));
    assert_non_null(strstr(line.data, " bits)]"));
    tls_conn_free(&c);
    stream_free(&s);
    tls_ctx_free(&ctx);
    assert_int_equal(wait_server(pid), 0);
    /* The shared ticket key was created, 80 bytes, private. */
    struct stat st;
    assert_int_equal(stat(ticket_key, &st), 0);
    assert_int_equal(st.st_size, 80);
    assert_int_equal(st.st_mode & 077, 0);
    strbuf_release(&err);
    strbuf_release(&line);
}

static void test_tls12_only_client_is_accepted_and_described(void **state)
{
    (void)state;
    int fd;
    pid_t pid = fork_server(&fd, ">=TLSv1.2");
    struct strbuf err = STRBUF_INIT, line = STRBUF_INIT;
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.protocols = "TLSv1.2";
    struct tls_ctx *ctx = tls_client_ctx_new(&cfg, &err);
    assert_non_null(ctx);
    struct stream *s = stream_fdopen(fd);
    struct tls_conn *c = tls_conn_start(ctx, s, false, NULL, 10000, &err);
    assert_non_null(c);
    assert_false(tls_conn_verified(c)); /* no CA file: not verified */
    stream_puts(s, "x\r\n");
    stream_flush(s);
    assert_int_equal(stream_read_line(s, &line, 1024), STREAM_OK);
    assert_non_null(strstr(line.data, "[TLSv1.2 with cipher ECDHE-"));
    tls_conn_free(&c);
    stream_free(&s);
    tls_ctx_free(&ctx);
    assert_int_equal(wait_server(pid), 0);
    strbuf_release(&err);
    strbuf_release(&line);
}

static void test_tls13_server_refuses_tls12_client(void **state)
{
    (void)state;
    int fd;
    pid_t pid = fork_server(&fd, ">=TLSv1.3");
    struct strbuf err = STRBUF_INIT;
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.protocols = "TLSv1.2";
    struct tls_ctx *ctx = tls_client_ctx_new(&cfg, &err);
    struct stream *s = stream_fdopen(fd);
    struct tls_conn *c = tls_conn_start(ctx, s, false, NULL, 10000, &err);
    assert_null(c);
    assert_non_null(strstr(strbuf_str(&err), "handshake failed"));
    stream_free(&s);
    tls_ctx_free(&ctx);
    assert_int_equal(wait_server(pid), 3); /* the server's handshake failed too */
    strbuf_release(&err);
}

static void test_garbage_instead_of_client_hello_fails_cleanly(void **state)
{
    (void)state;
    int fd;
    pid_t pid = fork_server(&fd, ">=TLSv1.2");
    /* A plain-text command where a ClientHello belongs (STARTTLS injection). */
    const char junk[] = "NOOP\r\nNOOP\r\n";
    assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
    assert_int_equal(wait_server(pid), 3);
    close(fd);
}

static void test_silent_client_times_out(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct strbuf err = STRBUF_INIT;
    struct tls_config cfg = server_config();
    struct tls_ctx *ctx = tls_server_ctx_new(&cfg, &err);
    assert_non_null(ctx);
    struct stream *s = stream_fdopen(sv[1]);
    assert_null(tls_conn_start(ctx, s, true, NULL, 200, &err));
    assert_non_null(strstr(strbuf_str(&err), "timed out"));
    stream_free(&s);
    close(sv[0]);
    tls_ctx_free(&ctx);
    strbuf_release(&err);
}

static void test_bad_configurations_are_reported(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    struct tls_config cfg = server_config();
    cfg.cert2_file = NULL;
    cfg.key_file = rsa_key; /* does not match ec_cert */
    assert_null(tls_server_ctx_new(&cfg, &err));
    assert_non_null(strstr(strbuf_str(&err), "does not match"));
    strbuf_reset(&err);
    cfg = server_config();
    cfg.cert_file = "/nonexistent/cert.pem";
    assert_null(tls_server_ctx_new(&cfg, &err));
    assert_non_null(strstr(strbuf_str(&err), "/nonexistent/cert.pem"));
    strbuf_reset(&err);
    cfg = server_config();
    cfg.cert_file = "";
    assert_null(tls_server_ctx_new(&cfg, &err));
    strbuf_reset(&err);
    cfg = server_config();
    cfg.cipherlist = "NO-SUCH-CIPHER";
    assert_null(tls_server_ctx_new(&cfg, &err));
    assert_non_null(strstr(strbuf_str(&err), "tls_cipherlist"));
    strbuf_release(&err);
}

static void test_protocol_parsing(void **state)
{
    (void)state;
    struct strbuf err = STRBUF_INIT;
    int lo, hi;
    assert_int_equal(tls_parse_protocols(">=TLSv1.2", &lo, &hi, &err), 0);
    assert_int_equal(lo, TLS1_2_VERSION);
    assert_int_equal(hi, 0);
    assert_int_equal(tls_parse_protocols(">=TLSv1.3", &lo, &hi, &err), 0);
    assert_int_equal(lo, TLS1_3_VERSION);
    assert_int_equal(tls_parse_protocols("TLSv1.2, TLSv1.3", &lo, &hi, &err), 0);
    assert_int_equal(lo, TLS1_2_VERSION);
    assert_int_equal(hi, TLS1_3_VERSION);
    assert_int_equal(tls_parse_protocols("!SSLv2 !SSLv3 !TLSv1 !TLSv1.1", &lo, &hi, &err), 0);
    assert_int_equal(lo, TLS1_2_VERSION);
    assert_int_equal(tls_parse_protocols("", &lo, &hi, &err), 0);
    assert_int_equal(lo, TLS1_2_VERSION);
    /* Nothing below TLS 1.2, nothing unknown. */
    assert_int_equal(tls_parse_protocols(">=TLSv1", &lo, &hi, &err), -1);
    assert_int_equal(tls_parse_protocols("TLSv1.1", &lo, &hi, &err), -1);
    assert_int_equal(tls_parse_protocols("SSLv3", &lo, &hi, &err), -1);
    assert_int_equal(tls_parse_protocols(">=TLSv1.3 <=TLSv1.2", &lo, &hi, &err), -1);
    strbuf_release(&err);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data_over_socketpair),
        cmocka_unit_test(test_tls12_only_client_is_accepted_and_described),
        cmocka_unit_test(test_tls13_server_refuses_tls12_client),
        cmocka_unit_test(test_garbage_instead_of_client_hello_fails_cleanly),
        cmocka_unit_test(test_silent_client_times_out),
        cmocka_unit_test(test_bad_configurations_are_reported),
        cmocka_unit_test(test_protocol_parsing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
