/*
 * stream - bounded, buffered line I/O on a file descriptor.
 *
 * Used by every network protocol (smtpd, pop3d, imapd, the smtp client) and by
 * the internal protocol. The transport is a small function table
 * (struct stream_ops) so TLS slots in under an open stream later: after
 * STARTTLS the protocol code keeps the same stream and calls
 * stream_set_ops() with the TLS functions.
 *
 * Every read and write waits at most the stream's timeout. Errors are
 * sticky per direction: after a read error every read fails, after a write
 * error every write fails (a read timeout still lets the daemon write its
 * 421), and stream_status() tells the first error.
 * The stream owns its fd and closes it in stream_free().
 */
#ifndef TEGAMI_STREAM_H
#define TEGAMI_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "msg.h"
#include "strbuf.h"

enum stream_result {
    STREAM_OK = 0,       /* a full line (ending in LF) was read */
    STREAM_PARTIAL = 1,  /* max bytes read without finding LF */
    STREAM_EOF = -1,     /* peer closed (line may hold a last partial line) */
    STREAM_TIMEOUT = -2, /* nothing within the timeout */
    STREAM_ERROR = -3,   /* I/O error (errno logged by the caller) */
};

/*
 * Transport functions. read/write behave like read(2)/write(2) on a
 * non-blocking fd: >0 bytes, 0 = EOF (read only), -1 with errno; EAGAIN or
 * EWOULDBLOCK means "poll and retry" (want_write set = poll for POLLOUT).
 */
struct stream_ops {
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t len, bool *want_write);
    ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len, bool *want_read);
    /* bytes the transport holds already decrypted, or 0 */
    size_t (*pending)(void *ctx);
};

struct stream;

/* Wrap fd (made non-blocking). The stream owns fd. */
struct stream *stream_fdopen(int fd);
/* The same for a socket the caller knows is non-blocking (two system calls fewer). */
struct stream *stream_sockopen(int fd);
/* Close the fd (unless detached) and free; sets *sp to NULL. */
void stream_free(struct stream **sp);
/* Give up ownership of the fd: stream_free will not close it. */
int stream_detach_fd(struct stream *s);

/* Per-operation timeout in milliseconds (<= 0: wait forever). Default 300 s. */
void stream_set_timeout(struct stream *s, int timeout_ms);
/* Replace the transport (TLS). ops == NULL restores plain fd I/O. */
void stream_set_ops(struct stream *s, const struct stream_ops *ops, void *ctx);
int stream_fd(const struct stream *s);

/*
 * Read one line into line (reset first), LF included, at most max bytes.
 * STREAM_PARTIAL: the line is longer than max; the first max bytes are in
 * line and the rest is still unread (call again, or stream_skip_line()).
 */
enum stream_result stream_read_line(struct stream *s, struct strbuf *line, size_t max);
/* Discard input up to and including the next LF. */
enum stream_result stream_skip_line(struct stream *s);
/* Read up to len bytes, waiting for at least one. >0 bytes, else a STREAM_ code. */
ssize_t stream_read(struct stream *s, void *buf, size_t len);
/* Read exactly len bytes; STREAM_OK or a STREAM_ code. */
enum stream_result stream_read_exact(struct stream *s, void *buf, size_t len);
/* Bytes already read from the peer but not yet consumed (plus transport's). */
size_t stream_buffered(const struct stream *s);
/* Drop everything buffered on the read side (RFC 3207 §4.2: STARTTLS). */
void stream_discard_input(struct stream *s);

/* Buffered output; flushed by stream_flush or when the buffer fills. 0 or -1. */
int stream_write(struct stream *s, const void *data, size_t len);
int stream_puts(struct stream *s, const char *str);
int stream_printf(struct stream *s, const char *fmt, ...) MSG_PRINTF(2, 3);
int stream_flush(struct stream *s);
/* Bytes waiting in the output buffer. */
size_t stream_unflushed(const struct stream *s);
/*
 * Free the read and write buffers (16 KiB each) while they hold nothing:
 * an idle connection (imapd) need not keep them. They are allocated again
 * at the next read or write. A buffer with data in it is kept.
 */
void stream_release_buffers(struct stream *s);

/* The first error seen (STREAM_OK while healthy). */
enum stream_result stream_status(const struct stream *s);
/* Bytes read and written so far (for logs). */
unsigned long long stream_bytes_in(const struct stream *s);
unsigned long long stream_bytes_out(const struct stream *s);

#endif
