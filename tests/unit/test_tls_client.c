/*
 * Unit tests for the smtp client side of libmail/tls.c: security levels
 * may/encrypt/verify/dane, real handshakes over a socketpair against a
 * tegami TLS server in a forked child, with a CA, a CA-issued server
 * certificate, self-signed and expired certificates made here.
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
#include "test_util.h"
#include "tls.h"

static char tmpdir[4096];
/* ca: trusted CA; other_ca: a CA the client does not trust for this server;
 * mx: leaf for mx.example.test issued by ca (chain file = leaf + ca);
 * self: self-signed leaf for localhost; expired: self-signed, expired. */
static char ca_pem[4200], other_ca_pem[4200], mx_chain[4200], mx_key[4200], self_pem[4200],
    self_key[4200], expired_pem[4200], expired_key[4200], ticket_key[4200];
static X509 *ca_x509, *mx_x509, *self_x509, *expired_x509;

static X509 *make_cert(EVP_PKEY *pkey, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *issuer_key, bool is_ca, long from, long until, long serial)
{
    X509 *x = X509_new();
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), until);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext;
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                              is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (is_ca) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : pkey, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *a, X509 *b, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (a)
        assert_true(PEM_write_X509(f, a));
    if (b)
        assert_true(PEM_write_X509(f, b));
    if (key)
        assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (test_scratch_dir(tmpdir, sizeof(tmpdir), "test_tls_client") < 0)
        return -1;
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", tmpdir);
    snprintf(other_ca_pem, sizeof(other_ca_pem), "%s/other-ca.pem", tmpdir);
    snprintf(mx_chain, sizeof(mx_chain), "%s/mx-chain.pem", tmpdir);
    snprintf(mx_key, sizeof(mx_key), "%s/mx-key.pem", tmpdir);
    snprintf(self_pem, sizeof(self_pem), "%s/self.pem", tmpdir);
    snprintf(self_key, sizeof(self_key), "%s/self-key.pem", tmpdir);
    snprintf(expired_pem, sizeof(expired_pem), "%s/expired.pem", tmpdir);
    snprintf(expired_key, sizeof(expired_key), "%s/expired-key.pem", tmpdir);
    snprintf(ticket_key, sizeof(ticket_key), "%s/ticket.key", tmpdir);
    EVP_PKEY *ca_k = EVP_EC_gen("P-256"), *other_k = EVP_EC_gen("P-256");
    EVP_PKEY *mx_k = EVP_EC_gen("P-256"), *self_k = EVP_EC_gen("P-256");
    EVP_PKEY *exp_k = EVP_EC_gen("P-256");
    if (!ca_k || !other_k || !mx_k || !self_k || !exp_k)
        return -1;
    ca_x509 = make_cert(ca_k, "Test CA", NULL, NULL, NULL, true, -3600, 86400, 1);
    X509 *other = make_cert(other_k, "Other CA", NULL, NULL, NULL, true, -3600, 86400, 2);
    mx_x509 = make_cert(mx_k, "mx.example.test", "DNS:mx.example.test,DNS:mx2.example.test",
                        ca_x509, ca_k, false, -3600, 86400, 3);
    self_x509 = make_cert(self_k, "localhost", "DNS:localhost", NULL, NULL, false, -3600, 86400, 4);
    expired_x509 = make_cert(exp_k, "localhost", "DNS:localhost", NULL, NULL, false, -86400 * 10,
                             -86400 * 5, 5);
    write_pem(ca_pem, ca_x509, NULL, NULL);
    write_pem(other_ca_pem, other, NULL, NULL);
    write_pem(mx_chain, mx_x509, ca_x509, NULL);
    write_pem(mx_key, NULL, NULL, mx_k);
    write_pem(self_pem, self_x509, NULL, NULL);
    write_pem(self_key, NULL, NULL, self_k);
    write_pem(expired_pem, expired_x509, NULL, NULL);
    write_pem(expired_key, NULL, NULL, exp_k);
    X509_free(other);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(other_k);
    EVP_PKEY_free(mx_k);
    EVP_PKEY_free(self_k);
    EVP_PKEY_free(exp_k);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ca_x509);
    X509_free(mx_x509);
    X509_free(self_x509);
    X509_free(expired_x509);
    test_remove_tree(tmpdir);
    return 0;
}

/* SHA-256 of the certificate (selector 0) or its SubjectPublicKeyInfo (1). */
static void tlsa_digest(X509 *x, int selector, unsigned char out[32])
{
    unsigned char *der = NULL;
    int len = selector == 0 ? i2d_X509(x, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    assert_true(len > 0);
    unsigned int olen = 0;
    assert_int_equal(EVP_Digest(der, (size_t)len, out, &olen, EVP_sha256(), NULL), 1);
    assert_int_equal(olen, 32);
    OPENSSL_free(der);
}

/* The server in a child: handshake with cert/key, answer one line, exit 0. */
static void run_server(int fd, const char *cert, const char *key)
{
    struct strbuf err = STRBUF_INIT, line = STRBUF_INIT;
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.protocols = ">=TLSv1.2";
    cfg.session_timeout = 3600;
    cfg.session_tickets = true;
    cfg.ticket_key_file = ticket_key; /* shared: a later child can resume */
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
    stream_printf(s, "ok %.*s\r\n", (int)line.len - 2, line.data);
    if (stream_flush(s) < 0)
        _exit(5);
    tls_conn_free(&c);
    stream_free(&s);
    tls_ctx_free(&ctx);
    _exit(0);
}

struct outcome {
    int rc; /* 0 = handshake and one exchange worked, -1 = tls_client_start failed */
    enum tls_peer_trust trust;
    bool resumed;
    struct strbuf err;
};

/* Connect ctx under pol to a fresh server with cert/key; record what happened. */
static void try_client(struct tls_ctx *ctx, const struct tls_client_policy *pol, const char *cert,
                       const char *key, struct outcome *o)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        run_server(sv[1], cert, key);
    }
    close(sv[1]);
    strbuf_reset(&o->err);
    o->rc = -1;
    o->resumed = false;
    struct stream *s = stream_fdopen(sv[0]);
    stream_set_timeout(s, 10000);
    struct tls_conn *c = tls_client_start(ctx, s, pol, 10000, &o->err);
    if (c != NULL) {
        o->trust = tls_conn_peer_trust(c);
        o->resumed = tls_conn_resumed(c);
        struct strbuf line = STRBUF_INIT;
        stream_puts(s, "hello\r\n");
        assert_int_equal(stream_flush(s), 0);
        assert_int_equal(stream_read_line(s, &line, 1024), STREAM_OK);
        assert_string_equal(line.data, "ok hello\r\n");
        strbuf_release(&line);
        tls_conn_free(&c);
        o->rc = 0;
    }
    stream_free(&s);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    /* The server finished its exchange exactly when the client did. */
    if (o->rc == 0)
        assert_int_equal(WEXITSTATUS(status), 0);
    else
        assert_int_not_equal(WEXITSTATUS(status), 0);
}

static struct tls_ctx *client_ctx(const char *ca_file)
{
    struct strbuf err = STRBUF_INIT;
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.protocols = ">=TLSv1.2";
    cfg.ca_file = ca_file;
    struct tls_ctx *ctx = tls_client_ctx_new(&cfg, &err);
    if (ctx == NULL)
        fail_msg("client context: %s", strbuf_str(&err));
    strbuf_release(&err);
    return ctx;
}

static void test_level_parse_rejects_unknown_words(void **state)
{
    (void)state;
    enum tls_level l = TLS_LEVEL_MAY;
    assert_int_equal(tls_level_parse("", &l), -1);
    assert_int_equal(tls_level_parse("secure", &l), -1);
    assert_int_equal(tls_level_parse("may ", &l), -1);
    assert_int_equal(tls_level_parse("dane-only", &l), -1);
    assert_int_equal(tls_level_parse(NULL, &l), -1);
    assert_int_equal(l, TLS_LEVEL_MAY); /* untouched on error */
    const char *names[] = {"none", "may", "encrypt", "verify", "dane"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tls_level_parse(names[i], &l), 0);
        assert_int_equal(l, (enum tls_level)i);
        assert_string_equal(tls_level_str(l), names[i]);
    }
    assert_int_equal(tls_level_parse("DANE", &l), 0);
    assert_int_equal(l, TLS_LEVEL_DANE);
    assert_int_equal(tls_level_parse("Encrypt", &l), 0);
    assert_int_equal(l, TLS_LEVEL_ENCRYPT);
    assert_string_equal(tls_level_str((enum tls_level)42), "unknown");
}

static void test_level_none_starts_no_tls(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    struct tls_client_policy pol = {.level = TLS_LEVEL_NONE};
    struct outcome o = {.err = STRBUF_INIT};
    try_client(ctx, &pol, self_pem, self_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "none"));
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct strbuf err = STRBUF_INIT;
    struct stream *s = stream_fdopen(sv[0]);
    struct tls_client_policy pol = {.level = TLS_LEVEL_MAY, .servername = "mx.example.test"};
    assert_null(tls_client_start(ctx, s, &pol, 200, &err));
    assert_non_null(strstr(strbuf_str(&err), "timed out"));
    stream_free(&s);
    close(sv[1]);
    strbuf_release(&err);
    tls_ctx_free(&ctx);
}

static void test_plain_text_server_fails_cleanly(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* A server that answers the ClientHello with SMTP text, then hangs up. */
    const char junk[] = "454 4.7.0 TLS not available\r\n";
    assert_int_equal(write(sv[1], junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
    close(sv[1]);
    struct strbuf err = STRBUF_INIT;
    struct stream *s = stream_fdopen(sv[0]);
    struct tls_client_policy pol = {.level = TLS_LEVEL_ENCRYPT};
    assert_null(tls_client_start(ctx, s, &pol, 5000, &err));
    assert_non_null(strstr(strbuf_str(&err), "handshake failed"));
    stream_free(&s);
    /* A server context is not a client context. */
    struct tls_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.cert_file = self_pem;
    cfg.key_file = self_key;
    struct tls_ctx *server = tls_server_ctx_new(&cfg, &err);
    assert_non_null(server);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s = stream_fdopen(sv[0]);
    strbuf_reset(&err);
    assert_null(tls_client_start(server, s, &pol, 5000, &err));
    assert_true(err.len > 0);
    stream_free(&s);
    close(sv[1]);
    tls_ctx_free(&server);
    strbuf_release(&err);
    tls_ctx_free(&ctx);
}

static void test_may_and_encrypt_accept_self_signed_server(void **state)
{
    (void)state;
    /* Even with a CA store that does not know the server: no verification. */
    struct tls_ctx *ctx = client_ctx(ca_pem);
    struct outcome o = {.err = STRBUF_INIT};
    struct tls_client_policy pol = {.level = TLS_LEVEL_MAY, .servername = "mx.example.test"};
    try_client(ctx, &pol, self_pem, self_key, &o);
    if (o.rc != 0)
        fail_msg("may: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_ANON);
    pol.level = TLS_LEVEL_ENCRYPT;
    try_client(ctx, &pol, expired_pem, expired_key, &o);
    if (o.rc != 0)
        fail_msg("encrypt: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_ANON);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_verify_fails_on_untrusted_chain(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(other_ca_pem);
    struct outcome o = {.err = STRBUF_INIT};
    struct tls_client_policy pol = {.level = TLS_LEVEL_VERIFY, .servername = "mx.example.test"};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "certificate"));
    /* A self-signed server is just as untrusted. */
    try_client(ctx, &pol, self_pem, self_key, &o);
    assert_int_equal(o.rc, -1);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_verify_fails_on_name_mismatch(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(ca_pem);
    struct outcome o = {.err = STRBUF_INIT};
    const char *names[] = {"other.example.test", "example.test"};
    struct tls_client_policy pol = {.level = TLS_LEVEL_VERIFY,
                                    .servername = "mx.example.test",
                                    .verify_names = names,
                                    .nverify_names = 2};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "mismatch"));
    /* No names and no servername: nothing to verify against. */
    struct tls_client_policy bare = {.level = TLS_LEVEL_VERIFY};
    try_client(ctx, &bare, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_verify_succeeds_with_ca_and_right_name(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(ca_pem);
    struct outcome o = {.err = STRBUF_INIT};
    struct tls_client_policy pol = {.level = TLS_LEVEL_VERIFY, .servername = "mx.example.test"};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("verify: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_VERIFIED);
    /* Any one of the names matching is enough. */
    const char *names[] = {"nomatch.example.test", "mx2.example.test"};
    pol.verify_names = names;
    pol.nverify_names = 2;
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("verify (second name): %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_VERIFIED);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_dane_ee_spki_match_ignores_name_and_self_signature(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    unsigned char d[32];
    tlsa_digest(self_x509, 1, d);
    struct tls_tlsa rr[] = {{3, 1, 1, d, sizeof(d)}};
    struct tls_client_policy pol = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = rr, .ntlsa = 1};
    struct outcome o = {.err = STRBUF_INIT};
    try_client(ctx, &pol, self_pem, self_key, &o);
    if (o.rc != 0)
        fail_msg("dane-ee: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_DANE);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_dane_ee_ignores_expiry(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    unsigned char d[32];
    tlsa_digest(expired_x509, 0, d);
    struct tls_tlsa rr[] = {{3, 0, 1, d, sizeof(d)}};
    struct tls_client_policy pol = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = rr, .ntlsa = 1};
    struct outcome o = {.err = STRBUF_INIT};
    try_client(ctx, &pol, expired_pem, expired_key, &o);
    if (o.rc != 0)
        fail_msg("dane-ee expired: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_DANE);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_dane_nonmatching_record_fails(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(ca_pem);
    unsigned char d[32];
    tlsa_digest(self_x509, 1, d); /* the key of another server */
    struct tls_tlsa rr[] = {{3, 1, 1, d, sizeof(d)}};
    struct tls_client_policy pol = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = rr, .ntlsa = 1};
    struct outcome o = {.err = STRBUF_INIT};
    /* mx is valid under the CA the context trusts: PKIX must not rescue it. */
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "handshake failed"));
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_dane_ta_of_issuing_ca_checks_names(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(NULL);
    unsigned char d[32];
    tlsa_digest(ca_x509, 0, d);
    struct tls_tlsa rr[] = {{2, 0, 1, d, sizeof(d)}};
    struct tls_client_policy pol = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = rr, .ntlsa = 1};
    struct outcome o = {.err = STRBUF_INIT};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("dane-ta: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_DANE);
    /* The same record with a name the certificate does not carry: refused. */
    pol.servername = "wrong.example.test";
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "mismatch"));
    /* ...unless another reference name (the next-hop domain, RFC 7672 §3.2.2) matches. */
    const char *names[] = {"mx2.example.test"};
    pol.verify_names = names;
    pol.nverify_names = 1;
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("dane-ta second name: %s", strbuf_str(&o.err));
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_dane_only_pkix_or_malformed_records_are_unusable(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(ca_pem);
    unsigned char d_ca[32], d_mx[32];
    tlsa_digest(ca_x509, 0, d_ca);
    tlsa_digest(mx_x509, 1, d_mx);
    /* PKIX-TA(0) and PKIX-EE(1) would match, but are unusable for SMTP. */
    struct tls_tlsa pkix[] = {{0, 0, 1, d_ca, sizeof(d_ca)}, {1, 1, 1, d_mx, sizeof(d_mx)}};
    struct tls_client_policy pol = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = pkix, .ntlsa = 2};
    struct outcome o = {.err = STRBUF_INIT};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "no usable TLSA records"));
    /* Wrong digest length, unknown selector/usage/mtype, empty data. */
    struct tls_tlsa bad[] = {{3, 1, 1, d_mx, 5},  {3, 7, 1, d_mx, sizeof(d_mx)},
                             {9, 1, 1, d_mx, 32}, {3, 1, 99, d_mx, sizeof(d_mx)},
                             {3, 1, 1, NULL, 0},  {2, 0, 2, d_ca, sizeof(d_ca)}};
    pol.tlsa = bad;
    pol.ntlsa = sizeof(bad) / sizeof(bad[0]);
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "no usable TLSA records"));
    /* No records at all. */
    pol.ntlsa = 0;
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    assert_non_null(strstr(strbuf_str(&o.err), "no usable TLSA records"));
    /* A usable record beside unusable ones is enough. */
    struct tls_tlsa mixed[] = {
        {0, 0, 1, d_ca, sizeof(d_ca)}, {3, 1, 1, d_mx, 5}, {3, 1, 1, d_mx, sizeof(d_mx)}};
    pol.tlsa = mixed;
    pol.ntlsa = 3;
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("mixed: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_DANE);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_session_resumed_only_under_same_policy(void **state)
{
    (void)state;
    struct tls_ctx *ctx = client_ctx(ca_pem);
    struct outcome o = {.err = STRBUF_INIT};
    struct tls_client_policy pol = {.level = TLS_LEVEL_VERIFY, .servername = "mx.example.test"};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, 0);
    assert_false(o.resumed);
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("resume: %s", strbuf_str(&o.err));
    assert_true(o.resumed);
    assert_int_equal(o.trust, TLS_PEER_VERIFIED);
    /* Another name to verify: a full handshake with its own checks. */
    const char *names[] = {"wrong.example.test"};
    pol.verify_names = names;
    pol.nverify_names = 1;
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    /* DANE: new records, new handshake; same records, resumed. */
    unsigned char d[32];
    tlsa_digest(mx_x509, 1, d);
    struct tls_tlsa rr[] = {{3, 1, 1, d, sizeof(d)}};
    struct tls_client_policy dane = {
        .level = TLS_LEVEL_DANE, .servername = "mx.example.test", .tlsa = rr, .ntlsa = 1};
    try_client(ctx, &dane, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, 0);
    assert_false(o.resumed);
    try_client(ctx, &dane, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.resumed);
    assert_int_equal(o.trust, TLS_PEER_DANE);
    d[0] ^= 1; /* records changed: the cached session must not be used */
    try_client(ctx, &dane, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    strbuf_release(&o.err);
    tls_ctx_free(&ctx);
}

static void test_client_ctx_from_config(void **state)
{
    (void)state;
    struct strbuf text = STRBUF_INIT, errs = STRBUF_INIT;
    struct tls_ctx *ctx = NULL;
    config_reset();
    strbuf_printf(&text, "smtp_tls_CAfile = %s\nsmtp_tls_protocols = >=TLSv1.3\n", ca_pem);
    assert_int_equal(config_load_text("main.cf", text.data, text.len, &errs), 0);
    assert_int_equal(tls_client_ctx_from_config("smtp", &ctx, &errs), 0);
    assert_non_null(ctx);
    struct outcome o = {.err = STRBUF_INIT};
    struct tls_client_policy pol = {.level = TLS_LEVEL_VERIFY, .servername = "mx.example.test"};
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    if (o.rc != 0)
        fail_msg("from config: %s", strbuf_str(&o.err));
    assert_int_equal(o.trust, TLS_PEER_VERIFIED);
    tls_ctx_free(&ctx);

    /* Defaults: OpenSSL's default store, which does not hold our test CA. */
    config_reset();
    assert_int_equal(tls_client_ctx_from_config("smtp", &ctx, &errs), 0);
    try_client(ctx, &pol, mx_chain, mx_key, &o);
    assert_int_equal(o.rc, -1);
    tls_ctx_free(&ctx);

    /* Bad values are reported, with the parameter's name. */
    const char *bad[] = {"smtp_tls_CAfile = /nonexistent/ca.pem\n",
                         "smtp_tls_CApath = /nonexistent/certs\n", "smtp_tls_protocols = SSLv3\n",
                         "smtp_tls_ciphers = NO-SUCH-CIPHER\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_reset();
        strbuf_reset(&errs);
        assert_int_equal(config_load_text("main.cf", bad[i], strlen(bad[i]), &errs), 0);
        assert_int_equal(tls_client_ctx_from_config("smtp", &ctx, &errs), -1);
        assert_null(ctx);
        assert_true(errs.len > 0);
    }
    config_reset();
    strbuf_release(&text);
    strbuf_release(&errs);
    strbuf_release(&o.err);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse_rejects_unknown_words),
        cmocka_unit_test(test_level_none_starts_no_tls),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_plain_text_server_fails_cleanly),
        cmocka_unit_test(test_may_and_encrypt_accept_self_signed_server),
        cmocka_unit_test(test_verify_fails_on_untrusted_chain),
        cmocka_unit_test(test_verify_fails_on_name_mismatch),
        cmocka_unit_test(test_verify_succeeds_with_ca_and_right_name),
        cmocka_unit_test(test_dane_ee_spki_match_ignores_name_and_self_signature),
        cmocka_unit_test(test_dane_ee_ignores_expiry),
        cmocka_unit_test(test_dane_nonmatching_record_fails),
        cmocka_unit_test(test_dane_ta_of_issuing_ca_checks_names),
        cmocka_unit_test(test_dane_only_pkix_or_malformed_records_are_unusable),
        cmocka_unit_test(test_session_resumed_only_under_same_policy),
        cmocka_unit_test(test_client_ctx_from_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
