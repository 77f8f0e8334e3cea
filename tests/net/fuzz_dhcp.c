/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the DHCP parser and the server's message handling, after systemd's
 * fuzz-dhcp-server.c: one input is one packet from the VM's MAC, handled by a
 * server whose lease db lives in a private temp dir.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"

#include "net/dhcp_codec.h"

static const uint8_t vm_mac[6] = {0x0a, 0x11, 0x22, 0x33, 0x44, 0x55};
static char lease_db[256];

static void remove_db(void) {
  char path[300];
  unlink(lease_db);
  snprintf(path, sizeof path, "%s.lock", lease_db);
  unlink(path);
  *strrchr(lease_db, '/') = '\0';
  rmdir(lease_db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  char dir[] = "/tmp/qvm-fuzz-dhcp-XXXXXX";
  if (!mkdtemp(dir)) abort();
  snprintf(lease_db, sizeof lease_db, "%s/leases", dir);
  atexit(remove_db);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  dhcp_msg m;
  qvm_dhcp_stats st = {0};
  if (dhcp_msg_parse(&m, data, size, &st) == 0) {
    uint8_t out[DHCP_MAX_LEN];
    char host[QVM_NET_HOSTNAME_MAX];
    dhcp_hostname_sanitize(host, m.hostname, m.hostname_len);
    dhcp_msg_build(out, sizeof out, &m);
  }
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  memcpy(o.client_mac, vm_mac, 6);
  o.lease_db = lease_db;
  qvm_dhcp_server *s = NULL;
  if (qvm_dhcp_server_new(&s, &o, NULL) < 0) abort();
  uint8_t reply[DHCP_MAX_LEN];
  size_t rlen = 0;
  qvm_dhcp_server_handle_packet(&rlen, NULL, s, data, size, vm_mac, reply, sizeof reply, NULL);
  if (rlen) {
    dhcp_msg r;
    qvm_dhcp_stats rst = {0};
    if (dhcp_msg_parse(&r, reply, rlen, &rst) < 0) abort(); /* our replies always parse */
  }
  qvm_dhcp_server_free(s);
  return 0;
}
