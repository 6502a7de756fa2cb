/* Unit tests for libmail/sock.c: networks, address text, listen/connect. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"
#include "strbuf.h"

static char tmpdir[256];

static int group_setup(void **state)
{
    const char *base = getenv("TEGAMI_TEST_TMP");

    (void)state;
    if (base && *base) {
        mkdir(base, 0755);
        snprintf(tmpdir, sizeof(tmpdir), "%s/sockXXXXXX", base);
    } else {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/tegami-sock-XXXXXX");
    }
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    return 0;
}

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(25);
    assert_int_equal(inet_pton(AF_INET, a, &sin->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(587);
    assert_int_equal(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
    return ss;
}

static bool match(const struct sock_networks *n, struct sockaddr_storage ss)
{
    return sock_networks_match(n, (struct sockaddr *)&ss);
}

/* ---------------------------------------------------------- malformed input */

static void test_invalid_networks_are_rejected(void **state)
{
    static const char *bad[] = {
        "300.1.1.1",  "10.0.0.0/33", "[::1]/129", "[::1",     "abc",
        "1.2.3.4/",   "1.2.3.4/x",   "1.2.3",     "::1]/128", "10.0.0.0/8, nonsense",
        "1.2.3.4/-1", "[]/8",        "/8",
    };
    struct strbuf err = STRBUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sock_networks *n;

        strbuf_reset(&err);
        n = sock_networks_parse(bad[i], &err);
        if (n != NULL)
            fail_msg("accepted invalid network \"%s\"", bad[i]);
        assert_non_null(strstr(err.data, "invalid network"));
    }
    strbuf_release(&err);
}

static void test_bad_listen_specs_fail_cleanly(void **state)
{
    struct strbuf err = STRBUF_INIT;

    (void)state;
    assert_int_equal(sock_inet_listen("", 10, &err), -1);
    assert_int_equal(sock_inet_listen("127.0.0.1:", 10, &err), -1);
    assert_int_equal(sock_inet_listen("[::1", 10, &err), -1);
    assert_int_equal(sock_inet_listen("a:b:c", 10, &err), -1);
    assert_int_equal(sock_inet_connect("not-an-address", 25, 100, &err), -1);
    assert_non_null(strstr(err.data, "not a numeric address"));
    assert_int_equal(sock_inet_connect("127.0.0.1", 0, 100, &err), -1);
    assert_int_equal(sock_inet_connect("127.0.0.1", 70000, 100, &err), -1);
    strbuf_release(&err);
}

static void test_unix_path_too_long_is_error(void **state)
{
    char path[300];
    struct strbuf err = STRBUF_INIT;

    (void)state;
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = 0;
    assert_int_equal(sock_unix_listen(path, 5, 0600, &err), -1);
    assert_non_null(strstr(err.data, "too long"));
    assert_int_equal(sock_unix_connect(path, 100, &err), -1);
    strbuf_release(&err);
}

static void test_unix_listen_refuses_to_replace_regular_file(void **state)
{
    char path[512];
    struct strbuf err = STRBUF_INIT;
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "%s/file", tmpdir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sock_unix_listen(path, 5, 0600, &err), -1);
    assert_non_null(strstr(err.data, "not a socket"));
    assert_int_equal(sock_fifo_listen(path, 0600, &err), -1);
    assert_non_null(strstr(err.data, "not a fifo"));
    unlink(path);
    strbuf_release(&err);
}

static void test_connect_to_nothing_fails(void **state)
{
    char path[512];
    struct strbuf err = STRBUF_INIT;

    (void)state;
    snprintf(path, sizeof(path), "%s/nobody", tmpdir);
    assert_int_equal(sock_unix_connect(path, 200, &err), -1);
    assert_non_null(strstr(err.data, "connect"));
    strbuf_release(&err);
}

/* ---------------------------------------------------------- behaviour */

static void test_empty_network_list_matches_nothing(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sock_networks *n = sock_networks_parse("", &err);

    (void)state;
    assert_non_null(n);
    assert_false(match(n, v4("127.0.0.1")));
    assert_false(match(n, v6("::1")));
    sock_networks_free(&n);
    assert_null(n);
    n = sock_networks_parse(" , ", &err);
    assert_non_null(n);
    assert_false(match(n, v4("127.0.0.1")));
    sock_networks_free(&n);
    strbuf_release(&err);
}

static void test_default_mynetworks_match_loopback_only(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sock_networks *n = sock_networks_parse("127.0.0.0/8, [::1]/128", &err);

    (void)state;
    assert_non_null(n);
    assert_true(match(n, v4("127.0.0.1")));
    assert_true(match(n, v4("127.255.255.254")));
    assert_false(match(n, v4("128.0.0.1")));
    assert_false(match(n, v4("10.0.0.1")));
    assert_true(match(n, v6("::1")));
    assert_false(match(n, v6("::2")));
    assert_true(match(n, v6("::ffff:127.0.0.9")));
    assert_false(match(n, v6("::ffff:10.0.0.9")));
    sock_networks_free(&n);
    strbuf_release(&err);
}

static void test_cidr_boundaries(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sock_networks *n =
        sock_networks_parse("192.168.1.0/25 10.1.2.3 2001:db8::/32,[fe80::]/10", &err);

    (void)state;
    assert_non_null(n);
    assert_true(match(n, v4("192.168.1.0")));
    assert_true(match(n, v4("192.168.1.127")));
    assert_false(match(n, v4("192.168.1.128")));
    assert_true(match(n, v4("10.1.2.3")));
    assert_false(match(n, v4("10.1.2.4")));
    assert_true(match(n, v6("2001:db8:ffff::1")));
    assert_false(match(n, v6("2001:db9::1")));
    assert_true(match(n, v6("febf::1")));
    assert_false(match(n, v6("fec0::1")));
    sock_networks_free(&n);
    strbuf_release(&err);
}

static void test_host_bits_are_masked_and_zero_prefix_matches_all(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sock_networks *n = sock_networks_parse("192.168.1.77/24, 0.0.0.0/0", &err);

    (void)state;
    assert_non_null(n);
    assert_true(match(n, v4("192.168.1.1")));
    assert_true(match(n, v4("8.8.8.8")));
    assert_false(match(n, v6("2001:db8::1")));
    sock_networks_free(&n);
    strbuf_release(&err);
}

static void test_mapped_network_matches_ipv4(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sock_networks *n = sock_networks_parse("[::ffff:10.0.0.0]/104", &err);

    (void)state;
    assert_non_null(n);
    assert_true(match(n, v4("10.9.9.9")));
    assert_false(match(n, v4("11.0.0.1")));
    sock_networks_free(&n);
    strbuf_release(&err);
}

static void test_addr_text(void **state)
{
    char buf[64];
    int port = -1;
    struct sockaddr_storage ss;
    struct sockaddr_un sun;

    (void)state;
    ss = v4("192.0.2.1");
    sock_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), &port);
    assert_string_equal(buf, "192.0.2.1");
    assert_int_equal(port, 25);
    ss = v6("2001:db8::5");
    sock_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), &port);
    assert_string_equal(buf, "2001:db8::5");
    assert_int_equal(port, 587);
    ss = v6("::ffff:192.0.2.7");
    sock_addr_text((struct sockaddr *)&ss, buf, sizeof(buf), NULL);
    assert_string_equal(buf, "192.0.2.7");
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    sock_addr_text((struct sockaddr *)&sun, buf, sizeof(buf), &port);
    assert_string_equal(buf, "unix");
    assert_int_equal(port, 0);
}

static void test_inet_listen_and_connect(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int lfd, cfd, afd, flags;

    (void)state;
    lfd = sock_inet_listen("127.0.0.1:0", 5, &err);
    assert_true(lfd >= 0);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    cfd = sock_inet_connect("127.0.0.1", ntohs(sin.sin_port), 2000, &err);
    assert_true(cfd >= 0);
    flags = fcntl(cfd, F_GETFL);
    assert_false(flags & O_NONBLOCK);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(write(cfd, "x", 1), 1);
    close(afd);
    close(cfd);
    close(lfd);
    /* Now nothing listens there. */
    assert_int_equal(sock_inet_connect("127.0.0.1", ntohs(sin.sin_port), 2000, &err), -1);
    strbuf_release(&err);
}

static void test_inet6_listen_with_brackets(void **state)
{
    struct strbuf err = STRBUF_INIT;
    struct sockaddr_in6 sin6;
    socklen_t len = sizeof(sin6);
    int lfd, cfd;

    (void)state;
    lfd = sock_inet_listen("[::1]:0", 5, &err);
    if (lfd < 0)
        skip(); /* no IPv6 loopback in this environment */
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin6, &len), 0);
    cfd = sock_inet_connect("[::1]", ntohs(sin6.sin6_port), 2000, &err);
    assert_true(cfd >= 0);
    close(cfd);
    close(lfd);
    strbuf_release(&err);
}

static void test_unix_listen_replaces_stale_socket(void **state)
{
    char path[512];
    struct strbuf err = STRBUF_INIT;
    struct stat st;
    int lfd, cfd;

    (void)state;
    snprintf(path, sizeof(path), "%s/sock", tmpdir);
    lfd = sock_unix_listen(path, 5, 0600, &err);
    assert_true(lfd >= 0);
    close(lfd); /* leaves a stale socket file */
    lfd = sock_unix_listen(path, 5, 0660, &err);
    assert_true(lfd >= 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    cfd = sock_unix_connect(path, 1000, &err);
    assert_true(cfd >= 0);
    close(cfd);
    close(lfd);
    unlink(path);
    strbuf_release(&err);
}

static void test_fifo_listen_creates_readable_fifo(void **state)
{
    char path[512], buf[8];
    struct strbuf err = STRBUF_INIT;
    struct stat st;
    int rfd, wfd;

    (void)state;
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    rfd = sock_fifo_listen(path, 0622, &err);
    assert_true(rfd >= 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0622);
    /* Nothing written yet: a read does not block. */
    assert_int_equal(read(rfd, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    wfd = open(path, O_WRONLY | O_NONBLOCK);
    assert_true(wfd >= 0);
    assert_int_equal(write(wfd, "F\n", 2), 2);
    close(wfd);
    assert_int_equal(read(rfd, buf, sizeof(buf)), 2);
    /* The last writer closing is not end-of-file for the reader. */
    assert_int_equal(read(rfd, buf, sizeof(buf)), -1);
    close(rfd);
    /* Reopening an existing fifo works. */
    rfd = sock_fifo_listen(path, 0622, &err);
    assert_true(rfd >= 0);
    close(rfd);
    unlink(path);
    strbuf_release(&err);
}

static void test_loopback_addresses(void **state)
{
    (void)state;
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    struct sockaddr un = {.sa_family = AF_UNIX};

    inet_pton(AF_INET, "127.9.8.7", &in.sin_addr);
    assert_true(sock_addr_is_loopback((struct sockaddr *)&in));
    inet_pton(AF_INET, "128.0.0.1", &in.sin_addr);
    assert_false(sock_addr_is_loopback((struct sockaddr *)&in));
    inet_pton(AF_INET, "10.127.0.1", &in.sin_addr);
    assert_false(sock_addr_is_loopback((struct sockaddr *)&in));
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    assert_true(sock_addr_is_loopback((struct sockaddr *)&in6));
    inet_pton(AF_INET6, "::ffff:127.0.0.2", &in6.sin6_addr);
    assert_true(sock_addr_is_loopback((struct sockaddr *)&in6));
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &in6.sin6_addr);
    assert_false(sock_addr_is_loopback((struct sockaddr *)&in6));
    inet_pton(AF_INET6, "::2", &in6.sin6_addr);
    assert_false(sock_addr_is_loopback((struct sockaddr *)&in6));
    assert_false(sock_addr_is_loopback(&un));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_networks_are_rejected),
        cmocka_unit_test(test_bad_listen_specs_fail_cleanly),
        cmocka_unit_test(test_unix_path_too_long_is_error),
        cmocka_unit_test(test_unix_listen_refuses_to_replace_regular_file),
        cmocka_unit_test(test_connect_to_nothing_fails),
        cmocka_unit_test(test_empty_network_list_matches_nothing),
        cmocka_unit_test(test_default_mynetworks_match_loopback_only),
        cmocka_unit_test(test_cidr_boundaries),
        cmocka_unit_test(test_host_bits_are_masked_and_zero_prefix_matches_all),
        cmocka_unit_test(test_mapped_network_matches_ipv4),
        cmocka_unit_test(test_addr_text),
        cmocka_unit_test(test_inet_listen_and_connect),
        cmocka_unit_test(test_inet6_listen_with_brackets),
        cmocka_unit_test(test_unix_listen_replaces_stale_socket),
        cmocka_unit_test(test_fifo_listen_creates_readable_fifo),
        cmocka_unit_test(test_loopback_addresses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
