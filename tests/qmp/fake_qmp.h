/* SPDX-License-Identifier: MIT */
#ifndef QVM_TESTS_FAKE_QMP_H
#define QVM_TESTS_FAKE_QMP_H

/*
 * A scripted fake QMP server on a thread: it replays steps over one end of a
 * socket (send bytes, expect a command, receive an fd, close...). Failures of
 * the script are recorded, not asserted, and checked by fake_qmp_join() on
 * the test's own thread.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
  FAKE_END = 0,
  FAKE_SEND,       /* text; "%ID%" becomes the last command's id, "%PREV%" the one before */
  FAKE_SEND_RAW,   /* text with len bytes, sent as is (may hold NUL or \xff) */
  FAKE_EXPECT,     /* text is the command name; args (optional) its exact arguments */
  FAKE_EXPECT_FD,  /* like FAKE_EXPECT, and an fd must come with it: writes
                    * FAKE_FD_GREETING through it and closes it */
  FAKE_SEND_FLOOD, /* len bytes of '[' with no newline, until the peer stops reading */
  FAKE_CLOSE,      /* shutdown(SHUT_WR): EOF for the client */
  FAKE_WAIT_EOF,   /* read until the client closes (never answers) */
} fake_step_kind;

#define FAKE_FD_GREETING "hello through scm_rights\n"

typedef struct fake_step {
  fake_step_kind kind;
  const char *text;
  const char *args;
  size_t len;
} fake_step;

#define FAKE_GREETING                                                                              \
  {                                                                                                \
    FAKE_SEND, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "   \
               "\"package\": \"Debian 1:7.2\"}, \"capabilities\": [\"oob\"]}}\r\n"                 \
  }
#define FAKE_NEGOTIATE                                                                             \
  FAKE_GREETING, {FAKE_EXPECT, "qmp_capabilities"}, {                                              \
    FAKE_SEND, "{\"return\": {}, \"id\": %ID%}\r\n"                                                \
  }

typedef struct fake_qmp {
  pthread_t thread;
  int fd;
  int listen_fd;
  const fake_step *script;
  size_t flood_written; /* bytes of FAKE_SEND_FLOOD the client took */
  char ids[2][128];     /* last two command ids, as JSON */
  char failure[512];
} fake_qmp;

/* Starts the server on a socketpair; *client_fd is the client's end. */
void fake_qmp_start(fake_qmp *f, const fake_step *script, int *client_fd);
/* Starts the server on an already-connected fd (it is closed at the end). */
void fake_qmp_start_fd(fake_qmp *f, const fake_step *script, int fd);
/* Accepts one connection on listen_fd (left open) on the server thread,
 * then replays the script on it. */
void fake_qmp_start_accept(fake_qmp *f, const fake_step *script, int listen_fd);
/* Waits for the script to end; fails the test if the script went wrong. */
void fake_qmp_join(fake_qmp *f);

#endif
