/* SPDX-License-Identifier: MIT */
/* The CLI's string syntaxes for the typed create options: one pure parser
 * each (include/qvm/vm.h), used by the CLI and by qvm.yaml's scalar forms,
 * and the formatters the up record uses. qvm_vm_create itself never parses
 * a string syntax. */
#include "vm/syntax.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include "vm/net.h"
#include "vm/spec.h"

_Static_assert((int)VM_STEP_SHELL == (int)QVM_VM_STEP_SHELL &&
                   (int)VM_STEP_SCRIPT == (int)QVM_VM_STEP_SCRIPT &&
                   (int)VM_STEP_FILE == (int)QVM_VM_STEP_FILE,
               "the public step kinds are the spec's");

/* --- net ------------------------------------------------------------------ */

static int user_options(qvm_vm_net *n, char *opts, const char *text, qvm_error **err) {
  char *save = NULL;
  for (char *opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
    if (!strcmp(opt, "restrict") || !strcmp(opt, "restrict=on"))
      n->restricted = true;
    else if (!strcmp(opt, "restrict=off"))
      n->restricted = false;
    else
      return qvm_error_set(err, QVM_EINVAL,
                           "network option '%.40s' in '%.80s' is unknown: use restrict", opt, text);
  }
  return 0;
}

static int bridge_options(qvm_vm_net *n, char *opts, const char *text, qvm_error **err) {
  char *save = NULL;
  for (char *opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
    if (!strcmp(opt, "dhcp=external")) {
      n->dhcp_external = true;
    } else if (!strcmp(opt, "dhcp=qvm")) {
      n->dhcp_external = false;
    } else if (!strncmp(opt, "subnet=", 7)) {
      int r = vm_net_subnet_check(opt + 7, err);
      if (r < 0) return r;
      snprintf(n->subnet, sizeof n->subnet, "%s", opt + 7);
    } else {
      return qvm_error_set(err, QVM_EINVAL,
                           "network option '%.40s' in '%.80s' is unknown: use dhcp=external, "
                           "dhcp=qvm or subnet=A.B.C.D/N",
                           opt, text);
    }
  }
  return 0;
}

int qvm_vm_net_parse(qvm_vm_net *out, const char *text, qvm_error **err) {
  qvm_vm_net n = {.mode = QVM_VM_NET_USER};
  if (!text) {
    *out = n;
    return 0;
  }
  _cleanup_free_ char *copy = strdup(text);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  char *opts = strchr(copy, ',');
  if (opts) *opts++ = '\0';
  char *name = strchr(copy, '=');
  if (name) *name++ = '\0';
  int r = 0;
  if (!strcmp(copy, "bridge")) {
    n.mode = QVM_VM_NET_BRIDGE;
    if (name && (r = vm_net_bridge_name_check(name, err)) < 0) return r;
    if (name) snprintf(n.bridge, sizeof n.bridge, "%s", name);
    if (opts) r = bridge_options(&n, opts, text, err);
  } else if (!strcmp(copy, "user") && !name) {
    if (opts) r = user_options(&n, opts, text, err);
  } else if (!strcmp(copy, "none") && !name && !opts) {
    n.mode = QVM_VM_NET_NONE;
  } else {
    return qvm_error_set(err, QVM_EINVAL,
                         "network mode '%.80s' is unknown: use user, bridge or none", text);
  }
  if (r < 0) return r;
  if (n.dhcp_external && n.subnet[0])
    return qvm_error_set(err, QVM_EINVAL,
                         "subnet= and dhcp=external exclude each other: with an external dhcp "
                         "server the bridge's addresses are not qvm's");
  *out = n;
  return 0;
}

char *vm_net_format(const qvm_vm_net *n) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  switch (n->mode) {
  case QVM_VM_NET_NONE: qvm_strbuf_puts(&sb, "none"); break;
  case QVM_VM_NET_BRIDGE:
    qvm_strbuf_puts(&sb, "bridge");
    if (n->bridge[0]) qvm_strbuf_printf(&sb, "=%s", n->bridge);
    if (n->dhcp_external) qvm_strbuf_puts(&sb, ",dhcp=external");
    if (n->subnet[0]) qvm_strbuf_printf(&sb, ",subnet=%s", n->subnet);
    break;
  default: qvm_strbuf_puts(&sb, n->restricted ? "user,restrict" : "user"); break;
  }
  return qvm_strbuf_steal(&sb);
}

/* --- publish -------------------------------------------------------------- */

int qvm_vm_publish_parse(qvm_vm_publish *out, const char *text, qvm_error **err) {
  vm_forward f = {0};
  int r = vm_forward_parse(&f, text, err);
  if (r < 0) return r;
  qvm_vm_publish p = {.host_port = f.host_port,
                      .guest_port = f.guest_port,
                      .proto = f.udp ? QVM_VM_PROTO_UDP : QVM_VM_PROTO_TCP};
  /* vm_forward_parse fills in 127.0.0.1 when no address is given: keep ""
   * then, so the up record shows what the user wrote. */
  if (strchr(text, ':') != strrchr(text, ':')) snprintf(p.addr, sizeof p.addr, "%s", f.host_addr);
  vm_forward_clear(&f);
  *out = p;
  return 0;
}

char *vm_publish_format(const qvm_vm_publish *p) {
  char *s = NULL;
  if (asprintf(&s, "%s%s%u:%u%s", p->addr, p->addr[0] ? ":" : "", (unsigned)p->host_port,
               (unsigned)p->guest_port, p->proto == QVM_VM_PROTO_UDP ? "/udp" : "") < 0)
    return NULL;
  return s;
}

/* --- drives --------------------------------------------------------------- */

void qvm_vm_drive_clear(qvm_vm_drive *d) {
  if (!d) return;
  free((char *)d->path);
  free((char *)d->format);
  *d = (qvm_vm_drive){0};
}

int qvm_vm_drive_parse(qvm_vm_drive *out, const char *text, qvm_error **err) {
  vm_drive d = {0};
  int r = vm_drive_parse(&d, text, err);
  if (r < 0) return r;
  *out = (qvm_vm_drive){
      .path = TAKE_PTR(d.path), .format = TAKE_PTR(d.format), .readonly = d.readonly};
  vm_drive_clear(&d);
  return 0;
}

char *vm_drive_format(const qvm_vm_drive *d) {
  char *s = NULL;
  if (asprintf(&s, "%s%s%s%s", d->path, d->format ? ",format=" : "", d->format ? d->format : "",
               d->readonly ? ",readonly" : "") < 0)
    return NULL;
  return s;
}

/* --- provision steps ------------------------------------------------------ */

void qvm_vm_step_clear(qvm_vm_step *st) {
  if (!st) return;
  free((char *)st->text);
  free((char *)st->destination);
  *st = (qvm_vm_step){0};
}

int qvm_vm_step_parse(qvm_vm_step *out, const char *text, qvm_error **err) {
  vm_step st = {0};
  int r = vm_step_parse(&st, text, err);
  if (r < 0) return r;
  *out = (qvm_vm_step){.kind = (qvm_vm_step_kind)st.kind,
                       .sudo = st.sudo,
                       .text = TAKE_PTR(st.text),
                       .destination = TAKE_PTR(st.destination)};
  vm_step_clear(&st);
  return 0;
}

char *vm_public_step_format(const qvm_vm_step *st) {
  vm_step s = {.kind = (vm_step_kind)st->kind,
               .sudo = st->sudo,
               .text = (char *)st->text,
               .destination = (char *)st->destination};
  return vm_step_format(&s);
}
