/* libFuzzer target for libmail/pop3_parse.c: any bytes as one command line. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pop3_command cmd;
    const char *why = NULL;
    enum pop3_parse_result r = pop3_parse_command((const char *)data, size, &cmd, &why);
    if (r == POP3_PARSE_OK &&
        (cmd.name == NULL || cmd.arg_len > POP3_ARG_MAX || strlen(cmd.arg) != cmd.arg_len))
        __builtin_trap();
    if (r != POP3_PARSE_OK && why == NULL)
        __builtin_trap();
    return 0;
}
