/*
 * test_dns - lookups through dns.c against a real unbound server on loopback.
 *
 * main() writes an unbound.conf serving the test zones (local-zone/local-data)
 * into a scratch directory, starts /usr/sbin/unbound -d on 127.0.0.1 at a
 * free port, waits until it answers, runs the tests with resolver_address =
 * 127.0.0.1@PORT, and kills the server by its PID. If unbound cannot run,
 * the test FAILS: DNS behaviour must be tested, not assumed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "dns.h"
#include "test_util.h"

#define UNBOUND "/usr/sbin/unbound"

static char scratch[512];
static char forwarder[64];
static int dns_port;
static pid_t unbound_pid = -1;
static struct dns_resolver *res;

/* A port that was free a moment ago on 127.0.0.1 (UDP and TCP). */
static int free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
        int port = -1;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
            getsockname(u, (struct sockaddr *)&sin, &len) == 0 &&
            bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0)
            port = ntohs(sin.sin_port);
        if (u >= 0)
            close(u);
        if (t >= 0)
            close(t);
        if (port > 0)
            return port;
    }
    return -1;
}

static int write_conf(const char *path)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp,
            "server:\n"
            "  interface: 127.0.0.1@%d\n"
            "  port: %d\n"
            "  do-ip6: no\n"
            "  do-not-query-localhost: no\n"
            "  access-control: 127.0.0.0/8 allow\n"
            "  username: \"\"\n"
            "  chroot: \"\"\n"
            "  directory: \"%s\"\n"
            "  pidfile: \"%s/unbound.pid\"\n"
            "  logfile: \"%s/unbound.log\"\n"
            "  use-syslog: no\n"
            "  verbosity: 1\n"
            "  module-config: \"iterator\"\n"
            "  local-zone: \"a.test.\" static\n"
            "  local-data: \"a.test. IN MX 10 mx1.a.test.\"\n"
            "  local-data: \"a.test. IN MX 20 mx2.a.test.\"\n"
            "  local-data: \"mx1.a.test. IN A 127.0.0.11\"\n"
            "  local-data: \"mx1.a.test. IN AAAA 2001:db8::11\"\n"
            "  local-data: \"mx2.a.test. IN A 127.0.0.12\"\n"
            "  local-data: \"mx2.a.test. IN AAAA 2001:db8::12\"\n"
            "  local-data: \"_25._tcp.mx1.a.test. IN TLSA 3 1 1 "
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n"
            "  local-zone: \"nullmx.test.\" static\n"
            "  local-data: \"nullmx.test. IN MX 0 .\"\n"
            "  local-zone: \"nomx.test.\" static\n"
            "  local-data: \"nomx.test. IN A 127.0.0.13\"\n"
            "  local-zone: \"missing.test.\" always_nxdomain\n",
            dns_port, dns_port, scratch, scratch, scratch);
    return fclose(fp);
}

static void stop_unbound(void)
{
    if (unbound_pid > 0) {
        kill(unbound_pid, SIGTERM);
        waitpid(unbound_pid, NULL, 0);
        unbound_pid = -1;
    }
}

/* Start unbound and wait (at most ~15 s) until it answers a lookup. 0 or -1 with a message. */
static int start_unbound(void)
{
    char conf[600];
    const char *error = NULL;

    if (access(UNBOUND, X_OK) != 0) {
        fprintf(stderr, "test_dns: %s is missing (scripts/deps installs it)\n", UNBOUND);
        return -1;
    }
    if (test_scratch_dir(scratch, sizeof(scratch), "dns") < 0 || (dns_port = free_port()) < 0 ||
        (size_t)snprintf(conf, sizeof(conf), "%s/unbound.conf", scratch) >= sizeof(conf) ||
        write_conf(conf) < 0) {
        fprintf(stderr, "test_dns: cannot prepare the unbound configuration\n");
        return -1;
    }
    snprintf(forwarder, sizeof(forwarder), "127.0.0.1@%d", dns_port);
    if ((unbound_pid = fork()) < 0)
        return -1;
    if (unbound_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        execl(UNBOUND, UNBOUND, "-d", "-c", conf, (char *)NULL);
        _exit(127);
    }
    res = dns_resolver_create(forwarder, 500, 100, NULL, &error);
    if (res == NULL) {
        fprintf(stderr, "test_dns: dns_resolver_create: %s\n", error);
        return -1;
    }
    for (int i = 0; i < 30; i++) {
        struct dns_reply reply;
        int status;
        if (waitpid(unbound_pid, &status, WNOHANG) == unbound_pid) {
            unbound_pid = -1;
            fprintf(stderr, "test_dns: unbound exited (status %d); see %s/unbound.log\n", status,
                    scratch);
            return -1;
        }
        if (dns_lookup(res, "a.test", DNS_T_MX, &reply) == 0) {
            dns_reply_free(&reply);
            dns_resolver_free(&res);
            res = dns_resolver_create(forwarder, 5000, 100, NULL, &error);
            return res ? 0 : -1;
        }
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "test_dns: unbound does not answer on %s\n", forwarder);
    return -1;
}

static void test_malformed_names_are_rejected_without_a_query(void **state)
{
    (void)state;
    struct dns_reply reply;
    char longname[300];

    assert_int_equal(dns_lookup(res, "", DNS_T_MX, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    assert_int_equal(dns_lookup(res, "a..test", DNS_T_MX, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    assert_int_equal(dns_lookup(res, ".", DNS_T_A, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    assert_int_equal(dns_lookup(res, "a test", DNS_T_A, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    assert_int_equal(dns_lookup(res, NULL, DNS_T_A, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(dns_lookup(res, longname, DNS_T_A, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
    assert_int_equal(dns_lookup(res, "a.test", (enum dns_type)16, &reply), -1);
    assert_int_equal(reply.status, DNS_INVALID);
}

static void test_bad_resolver_address_is_rejected(void **state)
{
    (void)state;
    const char *error = NULL;
    const char *bad[] = {"127.0.0.1@",   "127.0.0.1@0", "127.0.0.1@65536", "127.0.0.1@5x",
                         "localhost@53", "@53",         "1.2.3.4.5"};
    char buf[64];
    bool lo = false;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dns_resolver *r = dns_resolver_create(bad[i], 1000, 10, NULL, &error);
        assert_null(r);
        assert_non_null(error);
    }
    assert_null(dns_resolver_create("", 0, 10, NULL, &error));
    assert_null(dns_resolver_create("", 1000, 0, NULL, &error));
    assert_int_equal(dns_parse_forwarder("::1@5353", buf, sizeof(buf), &lo), 0);
    assert_string_equal(buf, "::1@5353");
    assert_true(lo);
    assert_int_equal(dns_parse_forwarder("192.0.2.1", buf, sizeof(buf), &lo), 0);
    assert_string_equal(buf, "192.0.2.1@53");
    assert_false(lo);
}

static void test_system_resolver_context_is_created(void **state)
{
    (void)state;
    const char *error = NULL;
    struct dns_resolver *r = dns_resolver_create("", 1000, 10, NULL, &error);

    assert_non_null(r);
    dns_resolver_free(&r);
    assert_null(r);
    dns_resolver_free(&r);
}

static void test_mx_records_found(void **state)
{
    (void)state;
    struct dns_reply reply;
    bool seen10 = false, seen20 = false;

    assert_int_equal(dns_lookup(res, "A.test.", DNS_T_MX, &reply), 0);
    assert_int_equal(reply.status, DNS_FOUND);
    assert_false(reply.secure); /* no trust anchor: never claimed secure */
    assert_int_equal(reply.count, 2);
    for (size_t i = 0; i < reply.count; i++) {
        assert_int_equal(reply.rr[i].type, DNS_T_MX);
        if (reply.rr[i].pref == 10) {
            assert_string_equal(reply.rr[i].host, "mx1.a.test");
            seen10 = true;
        } else {
            assert_int_equal(reply.rr[i].pref, 20);
            assert_string_equal(reply.rr[i].host, "mx2.a.test");
            seen20 = true;
        }
    }
    assert_true(seen10 && seen20);
    dns_reply_free(&reply);
    assert_null(reply.rr);
}

static void test_a_and_aaaa_records_found(void **state)
{
    (void)state;
    struct dns_reply reply;

    assert_int_equal(dns_lookup(res, "mx1.a.test", DNS_T_A, &reply), 0);
    assert_int_equal(reply.count, 1);
    assert_string_equal(reply.rr[0].addr_text, "127.0.0.11");
    assert_int_equal(reply.rr[0].addr.ss_family, AF_INET);
    assert_int_equal(reply.rr[0].addr_len, sizeof(struct sockaddr_in));
    assert_int_equal(((struct sockaddr_in *)&reply.rr[0].addr)->sin_addr.s_addr,
                     inet_addr("127.0.0.11"));
    dns_reply_free(&reply);

    assert_int_equal(dns_lookup(res, "mx2.a.test", DNS_T_AAAA, &reply), 0);
    assert_int_equal(reply.count, 1);
    assert_string_equal(reply.rr[0].addr_text, "2001:db8::12");
    assert_int_equal(reply.rr[0].addr.ss_family, AF_INET6);
    assert_int_equal(reply.rr[0].addr_len, sizeof(struct sockaddr_in6));
    dns_reply_free(&reply);
}

static void test_tlsa_record_found(void **state)
{
    (void)state;
    struct dns_reply reply;

    assert_int_equal(dns_lookup(res, "_25._tcp.mx1.a.test", DNS_T_TLSA, &reply), 0);
    assert_int_equal(reply.count, 1);
    assert_int_equal(reply.rr[0].tlsa_usage, 3);
    assert_int_equal(reply.rr[0].tlsa_selector, 1);
    assert_int_equal(reply.rr[0].tlsa_mtype, 1);
    assert_int_equal(reply.rr[0].tlsa_len, 32);
    assert_int_equal(reply.rr[0].tlsa_data[0], 0x01);
    assert_int_equal(reply.rr[0].tlsa_data[31], 0xef);
    dns_reply_free(&reply);
}

static void test_null_mx_is_the_root(void **state)
{
    (void)state;
    struct dns_reply reply;

    assert_int_equal(dns_lookup(res, "nullmx.test", DNS_T_MX, &reply), 0);
    assert_int_equal(reply.count, 1);
    assert_int_equal(reply.rr[0].pref, 0);
    assert_string_equal(reply.rr[0].host, "");
    dns_reply_free(&reply);
}

static void test_no_mx_is_nodata(void **state)
{
    (void)state;
    struct dns_reply reply;

    assert_int_equal(dns_lookup(res, "nomx.test", DNS_T_MX, &reply), -1);
    assert_int_equal(reply.status, DNS_NODATA);
    assert_int_equal(reply.count, 0);
    assert_int_equal(dns_lookup(res, "nomx.test", DNS_T_A, &reply), 0);
    assert_string_equal(reply.rr[0].addr_text, "127.0.0.13");
    dns_reply_free(&reply);
    assert_int_equal(dns_lookup(res, "nomx.test", DNS_T_AAAA, &reply), -1);
    assert_int_equal(reply.status, DNS_NODATA);
}

static void test_missing_domain_is_nxdomain(void **state)
{
    (void)state;
    struct dns_reply reply;

    assert_int_equal(dns_lookup(res, "missing.test", DNS_T_MX, &reply), -1);
    assert_int_equal(reply.status, DNS_NXDOMAIN);
    assert_int_equal(reply.rcode, 3);
    assert_string_equal(dns_status_str(reply.status), "nxdomain");
    assert_int_equal(dns_lookup(res, "host.missing.test", DNS_T_A, &reply), -1);
    assert_int_equal(reply.status, DNS_NXDOMAIN);
}

static void test_record_limit_is_applied(void **state)
{
    (void)state;
    const char *error = NULL;
    struct dns_resolver *r = dns_resolver_create(forwarder, 5000, 1, NULL, &error);
    struct dns_reply reply;

    assert_non_null(r);
    assert_int_equal(dns_lookup(r, "a.test", DNS_T_MX, &reply), 0);
    assert_int_equal(reply.count, 1);
    dns_reply_free(&reply);
    dns_resolver_free(&r);
}

static void test_dead_server_is_a_temporary_failure_within_the_timeout(void **state)
{
    (void)state;
    const char *error = NULL;
    char addr[64];
    struct dns_reply reply;
    struct timespec t0, t1;
    int port = free_port();

    assert_true(port > 0);
    snprintf(addr, sizeof(addr), "127.0.0.1@%d", port);
    struct dns_resolver *r = dns_resolver_create(addr, 1000, 10, NULL, &error);
    assert_non_null(r);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(dns_lookup(r, "a.test", DNS_T_MX, &reply), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(reply.status, DNS_TEMPFAIL);
    assert_true(t1.tv_sec - t0.tv_sec <= 3);
    dns_resolver_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_names_are_rejected_without_a_query),
        cmocka_unit_test(test_bad_resolver_address_is_rejected),
        cmocka_unit_test(test_system_resolver_context_is_created),
        cmocka_unit_test(test_mx_records_found),
        cmocka_unit_test(test_a_and_aaaa_records_found),
        cmocka_unit_test(test_tlsa_record_found),
        cmocka_unit_test(test_null_mx_is_the_root),
        cmocka_unit_test(test_no_mx_is_nodata),
        cmocka_unit_test(test_missing_domain_is_nxdomain),
        cmocka_unit_test(test_record_limit_is_applied),
        cmocka_unit_test(test_dead_server_is_a_temporary_failure_within_the_timeout),
    };
    int rc;

    if (start_unbound() < 0) {
        stop_unbound();
        fprintf(stderr, "test_dns: FAIL: a real unbound server is required\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    dns_resolver_free(&res);
    stop_unbound();
    if (rc == 0)
        test_remove_tree(scratch);
    return rc == 0 ? 0 : 1;
}
