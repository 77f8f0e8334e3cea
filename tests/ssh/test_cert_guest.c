/* SPDX-License-Identifier: MIT */
/*
 * A sandbox's seed makes its guest trust qvm's CAs (vm/ca_guest.c), checked
 * without booting a guest:
 * - the seed of a sandbox writes the user CA, the KRL, a host certificate and
 *   the sshd drop-in, and a bootcmd that blocks certificates after a reboot;
 *   a VM that is not a sandbox gets none of them;
 * - ssh-keygen -L reads the host certificate: a host certificate of the
 *   pinned host key, principals the VM's name and 127.0.0.1;
 * - a real sshd given exactly the seed's files (its host key, the drop-in's
 *   settings) lets plain ssh in with a `qvm cert issue` certificate while the
 *   client's known_hosts holds only `qvm cert known-hosts` and checks
 *   strictly; with the boot-time KRL (the CA's own key) every such
 *   certificate is refused; the sandbox's static key, in authorized_keys,
 *   never logs in (the drop-in reads none);
 * - qvm's own login: a session certificate (ECDSA key in memory, session
 *   CA) logs in through qvm's libssh2 client, also under the boot-time KRL
 *   (so qvm can push the real one), and is refused from another source
 *   address or for another user; ssh-keygen -L reads it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qvm/cert.h>
#include <qvm/ssh.h>
#include <qvm/vm.h>

#include "ssh/session_key.h"
#include "ssh_server.h"
#include "testlib.h"
#include "vm/ca_guest.h"

#define SB "sbguest"
#define PLAIN "plainvm"

static struct {
  test_server server;
  bool server_up;
  char *dir;
  char qvm[1024], state[1024], files[1024];
} env;

/* Extracts user-data into a dir: every write_files entry under its base
 * name (and NAME.meta: path, mode, owner), the ed25519 host key (host_key),
 * bootcmd (one a line). */
static const char extract_py[] =
    "import base64,os,sys,yaml\n"
    "d=yaml.safe_load(open(sys.argv[1]).read())\n"
    "out=sys.argv[2]\n"
    "for f in d.get('write_files') or []:\n"
    "  c=f['content']\n"
    "  b=base64.b64decode(c) if f.get('encoding')=='b64' else c.encode()\n"
    "  p=os.path.join(out,os.path.basename(f['path']))\n"
    "  open(p,'wb').write(b)\n"
    "  open(p+'.meta','w').write(f['path']+' '+f.get('permissions','')+' "
    "'+f.get('owner','')+'\\n')\n"
    "k=d.get('ssh_keys') or {}\n"
    "if 'ed25519_private' in k: "
    "open(os.path.join(out,'host_key'),'w').write(k['ed25519_private'])\n"
    "b=[c if isinstance(c,str) else ' '.join(c) for c in d.get('bootcmd') or []]\n"
    "open(os.path.join(out,'bootcmd'),'w').write(''.join(c+'\\n' for c in b))\n";

static int create_vms(void) {
  char kernel[4096];
  snprintf(kernel, sizeof kernel, "%s/kernel", env.dir);
  if (qvm_test_sh(": > '%s'", kernel) != 0) return -1;
  qvm_vm_create_options o = QVM_VM_CREATE_OPTIONS_INIT;
  o.kernel = kernel;
  qvm_vm *vm = NULL;
  if (qvm_vm_create(&vm, PLAIN, &o, NULL) < 0) return -1;
  qvm_vm_free(vm);
  o.tags.sandbox = true;
  o.tags.expires_at_us = ((int64_t)time(NULL) + 3600) * 1000000;
  if (qvm_vm_create(&vm, SB, &o, NULL) < 0) return -1;
  qvm_vm_free(vm);
  return 0;
}

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("/usr/sbin/sshd");
  qvm_test_require_program("ssh");
  qvm_test_require_program("ssh-keygen");
  qvm_test_require_program("bsdtar");
  qvm_test_require_program("python3");
  env.dir = qvm_test_mkdtemp("certguest");
  char run[4096];
  snprintf(env.qvm, sizeof env.qvm, "%s/qvm", qvm_test_binary_dir());
  snprintf(env.state, sizeof env.state, "%s/state", env.dir);
  snprintf(env.files, sizeof env.files, "%s/" SB, env.dir);
  snprintf(run, sizeof run, "%s/run", env.dir);
  setenv("QVM_STATE_DIR", env.state, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);
  if (create_vms() < 0) return -1;
  /* setenv for the python text: qvm_test_sh runs sh -c with $1 unset */
  setenv("QVM_TEST_EXTRACT_PY", extract_py, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (env.server_up) test_server_stop(&env.server);
  if (env.dir) qvm_test_rmtree(env.dir);
  free(env.dir);
  return 0;
}

static void assert_contains(const char *hay, const char *needle) {
  if (!hay) fail_msg("no text to find '%s' in", needle);
  if (!strstr(hay, needle)) fail_msg("'%s' not found in:\n%s", needle, hay);
}

static char *slurp(const char *name) { return qvm_test_sh_output("cat '%s/%s'", env.files, name); }

static void test_seed_files(void **state) {
  (void)state;
  assert_int_equal(qvm_test_sh("set -e; export d='%s'; mkdir -p \"$d\"; "
                               "bsdtar -xOf '%s/vms/" SB "/seed.iso' user-data > \"$d/user-data\"; "
                               "python3 -c \"$QVM_TEST_EXTRACT_PY\" \"$d/user-data\" \"$d\"; "
                               "chmod 0600 \"$d/host_key\"",
                               env.files, env.state),
                   0);
  /* The drop-in names the three files, each written root's and 0644. */
  char *dropin = slurp("00-qvm.conf");
  assert_contains(dropin, "\nTrustedUserCAKeys /etc/ssh/qvm_trusted_cas.pub\n");
  assert_contains(dropin, "\nRevokedKeys /etc/ssh/qvm_revoked.krl\n");
  assert_contains(dropin, "\nHostCertificate /etc/ssh/qvm_host_ed25519_key-cert.pub");
  assert_contains(dropin, "\nAuthorizedKeysFile none\n");
  assert_contains(dropin, "\nAuthorizedPrincipalsFile /etc/ssh/qvm_principals/%u");
  free(dropin);
  char *meta = qvm_test_sh_output("cat '%s'/*.meta | sort", env.files);
  assert_string_equal(meta, "/etc/ssh/qvm_host_ed25519_key-cert.pub 0644 root:root\n"
                            "/etc/ssh/qvm_principals/qvm 0644 root:root\n"
                            "/etc/ssh/qvm_revoked.krl 0644 root:root\n"
                            "/etc/ssh/qvm_trusted_cas.pub 0644 root:root\n"
                            "/etc/ssh/qvm_user_ca.pub 0644 root:root\n"
                            "/etc/ssh/sshd_config.d/00-qvm.conf 0644 root:root\n"
                            "/etc/ssh/sshd_config.d/50-cloud-init.conf 0600 root:root");
  free(meta);
  /* The user CA is qvm's; the KRL is the CA store's, byte for byte. */
  char *ca = slurp("qvm_user_ca.pub"), *want = qvm_test_sh_output("'%s' cert ca --print", env.qvm);
  assert_non_null(want);
  assert_string_equal(ca, want);
  free(ca);
  /* sshd trusts the user CA and the session CA, nothing else. */
  char *cas = slurp("qvm_trusted_cas.pub");
  char *session = qvm_test_sh_output("cat '%s/ca/session_ca.pub'", env.state);
  assert_non_null(cas), assert_non_null(session);
  assert_contains(session, "ssh-ed25519 ");
  char *both = NULL;
  assert_true(asprintf(&both, "%s\n%s", want, session) > 0);
  assert_string_equal(cas, both);
  free(cas), free(session), free(both), free(want);
  /* The guest user's (qvm's) principals: the user (qvm cert issue's
   * certificates) and this sandbox's session principal. The sshd below
   * runs on this host, where the test logs in as root: root gets the guest
   * user's file, and certificates name the guest user. */
  char *principals = slurp("qvm");
  assert_non_null(principals);
  assert_string_equal(principals, "qvm\nqvm-session:" SB);
  free(principals);
  assert_int_equal(
      qvm_test_sh("mkdir -p '%s/qvm_principals' && cp '%s/qvm' '%s/qvm_principals/root'", env.files,
                  env.files, env.files),
      0);
  /* The sandbox is marked for session logins (the mark names it); a plain
   * VM is not. */
  char *mark = qvm_test_sh_output("cat '%s/vms/" SB "/" VM_CA_SESSION_MARK "'", env.state);
  assert_non_null(mark);
  assert_string_equal(mark, SB);
  free(mark);
  assert_int_equal(qvm_test_sh("test -e '%s/vms/" SB "/" VM_CA_SESSION_MARK "' && "
                               "test ! -e '%s/vms/" PLAIN "/" VM_CA_SESSION_MARK "'",
                               env.state, env.state),
                   0);
  assert_int_equal(
      qvm_test_sh("cmp -s '%s/qvm_revoked.krl' '%s/ca/revoked.krl'", env.files, env.state), 0);
  /* After a reboot the KRL becomes the CA's own key (certificates refused). */
  char *boot = slurp("bootcmd");
  assert_contains(boot,
                  "cp --remove-destination /etc/ssh/qvm_user_ca.pub /etc/ssh/qvm_revoked.krl");
  assert_null(strstr(boot, "rm -f /etc/ssh/sshd_config.d/"));
  free(boot);
}

static void test_host_cert_listing(void **state) {
  (void)state;
  char *listing =
      qvm_test_sh_output("ssh-keygen -L -f '%s/qvm_host_ed25519_key-cert.pub'", env.files);
  assert_contains(listing, "Type: ssh-ed25519-cert-v01@openssh.com host certificate");
  assert_contains(listing, "Principals: \n                " SB "\n                127.0.0.1\n");
  assert_contains(listing, "Key ID: \"qvm:");
  assert_contains(listing, ":" SB ":");
  free(listing);
  /* It certifies the host key qvm pinned, and is signed by the host CA. */
  char *pinned = qvm_test_sh_output("cut -d' ' -f2,3 '%s/vms/" SB "/known_hosts'", env.state);
  char *certified =
      qvm_test_sh_output("ssh-keygen -y -f '%s/host_key' 2>/dev/null | cut -d' ' -f1,2", env.files);
  char *cert_key = qvm_test_sh_output(
      "ssh-keygen -L -f '%s/qvm_host_ed25519_key-cert.pub' | sed -n 's/^ *Public key: //p'",
      env.files);
  char *pinned_fp = qvm_test_sh_output("cut -d' ' -f2,3 '%s/vms/" SB "/known_hosts' | "
                                       "ssh-keygen -lf - | cut -d' ' -f2",
                                       env.state);
  assert_non_null(pinned), assert_non_null(certified), assert_non_null(cert_key);
  assert_string_equal(pinned, certified);
  assert_contains(cert_key, pinned_fp);
  free(pinned), free(certified), free(cert_key), free(pinned_fp);
  char *ca_fp =
      qvm_test_sh_output("'%s' cert ca --host --print | ssh-keygen -lf - | cut -d' ' -f2", env.qvm);
  char *signing = qvm_test_sh_output(
      "ssh-keygen -L -f '%s/qvm_host_ed25519_key-cert.pub' | sed -n 's/^ *Signing CA: //p'",
      env.files);
  assert_contains(signing, ca_fp);
  free(ca_fp), free(signing);
}

static void test_plain_vm_has_none(void **state) {
  (void)state;
  char *ud = qvm_test_sh_output("bsdtar -xOf '%s/vms/" PLAIN "/seed.iso' user-data", env.state);
  assert_non_null(ud);
  assert_null(strstr(ud, "qvm_user_ca"));
  assert_null(strstr(ud, "qvm_revoked.krl"));
  assert_null(strstr(ud, "HostCertificate"));
  /* ... and it removes a drop-in its disk may have from a sandbox (a clone). */
  assert_non_null(strstr(ud, "bootcmd:\n- \"rm -f /etc/ssh/sshd_config.d/00-qvm.conf "
                             "/etc/ssh/sshd_config.d/qvm.conf\"\n"));
  assert_null(strstr(ud, "TrustedUserCAKeys"));
  free(ud);
}

/* Plain OpenSSH as a user of a sandbox would run it: no alias, the port. */
static int ssh_login(const char *identity, const char *known_hosts) {
  return qvm_test_sh("ssh -F /dev/null -i '%s' -o IdentitiesOnly=yes -o UserKnownHostsFile='%s' "
                     "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes "
                     "-o BatchMode=yes -o ConnectTimeout=20 -p %d root@127.0.0.1 true "
                     "</dev/null 2>>'%s/ssh.log'",
                     identity, known_hosts, env.server.port, env.dir);
}

static void test_sshd_with_seed_files(void **state) {
  (void)state;
  char host_key[4096], key[4096], kh[4096], *config = NULL, *pub = NULL, *plain_pub = NULL;
  snprintf(host_key, sizeof host_key, "%s/host_key", env.files);
  pub = qvm_test_sh_output("ssh-keygen -y -f '%s'", host_key);
  /* authorized_keys holds the sandbox's static key (its seed authorizes it
   * for guests whose SSH server ignores the drop-in) */
  assert_int_equal(qvm_test_sh("cp '%s/vms/" SB "/id_ed25519' '%s/plain' && chmod 0600 '%s/plain'",
                               env.state, env.dir, env.dir),
                   0);
  plain_pub = qvm_test_sh_output("cat '%s/vms/" SB "/id_ed25519.pub'", env.state);
  char *ud = qvm_test_sh_output("cat '%s/user-data'", env.files);
  assert_non_null(ud), assert_non_null(plain_pub);
  assert_non_null(strstr(ud, strchr(plain_pub, ' ') + 1));
  free(ud);
  /* The drop-in with the guest's paths replaced by where the files are here. */
  config = qvm_test_sh_output("sed 's|/etc/ssh/|%s/|' '%s/00-qvm.conf' | grep -v '^#'", env.files,
                              env.files);
  assert_non_null(pub), assert_non_null(plain_pub), assert_non_null(config);
  assert_int_equal(test_sshd_start_config(&env.server, host_key, pub, plain_pub, config), 0);
  env.server_up = true;
  free(config), free(pub), free(plain_pub);
  /* The client knows only the host CA line `qvm cert known-hosts` prints. */
  snprintf(kh, sizeof kh, "%s/known_hosts", env.dir);
  assert_int_equal(qvm_test_sh("'%s' cert known-hosts > '%s'", env.qvm, kh), 0);
  char *line = qvm_test_sh_output("cat '%s'", kh);
  assert_contains(line, "@cert-authority 127.0.0.1,[127.0.0.1]:* ssh-ed25519 ");
  free(line);
  snprintf(key, sizeof key, "%s/c", env.dir);
  assert_int_equal(qvm_test_sh("'%s' cert issue " SB " -o '%s' --principal qvm --ttl 1m >/dev/null",
                               env.qvm, key),
                   0);
  assert_int_equal(ssh_login(key, kh), 0);
  /* Another pattern: a client that does not trust the CA for 127.0.0.1. */
  char other[4096];
  snprintf(other, sizeof other, "%s/known_hosts_other", env.dir);
  assert_int_equal(
      qvm_test_sh("'%s' cert known-hosts --pattern 'example.org' > '%s'", env.qvm, other), 0);
  assert_int_not_equal(ssh_login(key, other), 0);
  /* A bad pattern is refused with a message, not written. */
  assert_int_equal(qvm_test_sh("'%s' cert known-hosts --pattern 'a b' 2>/dev/null", env.qvm), 1);
  /* The static key does not log in: the drop-in reads no authorized_keys. */
  char plain[4096];
  snprintf(plain, sizeof plain, "%s/plain", env.dir);
  assert_int_not_equal(ssh_login(plain, kh), 0);
  /* The boot-time KRL (the user CA's key): certificates refused. */
  assert_int_equal(
      qvm_test_sh("cp '%s/qvm_user_ca.pub' '%s/qvm_revoked.krl'", env.files, env.files), 0);
  assert_int_not_equal(ssh_login(key, kh), 0);
  assert_int_not_equal(ssh_login(plain, kh), 0);
  /* The real KRL back: the certificate logs in again. */
  assert_int_equal(qvm_test_sh("cp '%s/ca/revoked.krl' '%s/qvm_revoked.krl'", env.state, env.files),
                   0);
  assert_int_equal(ssh_login(key, kh), 0);
}

/* qvm's own login as root with a session certificate for the sandbox
 * principal_vm from `source`. With key_file, the key (PEM) and certificate
 * are also written as review apply writes them for ansible: KEY and
 * KEY-cert.pub. */
static int session_login_to(const char *principal_vm, const char *source, char **cert_line,
                            const char *key_file) {
  ssh_session_key key = {0};
  qvm_cert_ca *ca = NULL;
  char *line = NULL, kh[4096];
  qvm_ssh *ssh = NULL;
  snprintf(kh, sizeof kh, "%s/pinned_known_hosts", env.dir);
  if (ssh_session_key_generate(&key, NULL) < 0 || qvm_cert_ca_open(&ca, NULL, NULL) < 0 ||
      vm_ca_session_issue(&line, ca, key.q, SB, principal_vm, source, VM_CA_SESSION_TTL_S, NULL) <
          0)
    fail_msg("cannot make a session certificate");
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = env.server.port;
  o.user = "root";
  o.vm_name = SB;
  o.known_hosts = kh;
  o.identity_pem = key.pem;
  o.certificate = line;
  o.timeout_ms = 20000;
  int r = qvm_ssh_connect(&ssh, &o, NULL);
  qvm_ssh_free(ssh);
  if (key_file && (qvm_test_sh("umask 077; printf '%%s' '%s' > '%s' && printf '%%s\\n' '%s' > "
                               "'%s-cert.pub'",
                               key.pem, key_file, line, key_file) != 0))
    r = -1;
  qvm_cert_ca_free(ca);
  ssh_session_key_clear(&key);
  if (cert_line)
    *cert_line = line;
  else
    free(line);
  return r;
}

static int session_login(const char *principal_vm, const char *source, char **cert_line) {
  return session_login_to(principal_vm, source, cert_line, NULL);
}

static void test_session_login(void **state) {
  (void)state;
  assert_true(env.server_up);
  /* qvm pinned the guest's host key: the known_hosts qvm itself uses. */
  char kh[4096];
  snprintf(kh, sizeof kh, "%s/pinned_known_hosts", env.dir);
  assert_int_equal(qvm_test_sh("cp '%s/vms/" SB "/known_hosts' '%s'", env.state, kh), 0);
  char *line = NULL;
  setenv("QVM_AGENT", "agent-7", 1); /* the key id names the agent the login is for */
  assert_int_equal(session_login(SB, "127.0.0.1", &line), 0);
  unsetenv("QVM_AGENT");
  /* OpenSSH reads it: an ECDSA user certificate of the session CA, for
   * this sandbox's session principal, from 127.0.0.1 only, valid from the
   * epoch (a guest whose clock went back takes it) for five minutes, no
   * forwarding. */
  assert_int_equal(qvm_test_sh("printf '%%s\\n' '%s' > '%s/session-cert.pub'", line, env.dir), 0);
  char *listing = qvm_test_sh_output("ssh-keygen -L -f '%s/session-cert.pub'", env.dir);
  assert_contains(listing, "Type: ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate");
  assert_contains(listing, "Key ID: \"qvm:agent-7:" SB ":");
  assert_contains(listing, "Principals: \n                qvm-session:" SB "\n");
  assert_contains(listing, "Valid: before ");
  assert_contains(listing, "source-address 127.0.0.1");
  assert_contains(listing, "permit-pty");
  assert_null(strstr(listing, "permit-port-forwarding"));
  free(listing);
  char *signer = qvm_test_sh_output(
      "ssh-keygen -L -f '%s/session-cert.pub' | sed -n 's/^ *Signing CA: ED25519 //p' | "
      "cut -d' ' -f1",
      env.dir);
  char *session_fp =
      qvm_test_sh_output("ssh-keygen -lf '%s/ca/session_ca.pub' | cut -d' ' -f2", env.state);
  assert_non_null(signer), assert_non_null(session_fp);
  assert_string_equal(signer, session_fp);
  free(signer), free(session_fp), free(line);
  /* OpenSSH's client takes the same key and certificate as files (what
   * ansible gets from review apply --target SANDBOX). */
  char key_file[4096], kh_ca[4096];
  snprintf(key_file, sizeof key_file, "%s/session_key", env.dir);
  snprintf(kh_ca, sizeof kh_ca, "%s/known_hosts", env.dir);
  assert_int_equal(session_login_to(SB, "127.0.0.1", NULL, key_file), 0);
  assert_int_equal(ssh_login(key_file, kh_ca), 0);
  /* From another source address, or another sandbox's: refused by sshd. */
  assert_int_not_equal(session_login(SB, "10.9.9.9", NULL), 0);
  assert_int_not_equal(session_login(PLAIN, "127.0.0.1", NULL), 0);
  assert_int_not_equal(session_login("sb-other", "127.0.0.1", NULL), 0);
  /* Under the boot-time KRL qvm still gets in (to push the real one). */
  assert_int_equal(
      qvm_test_sh("cp '%s/qvm_user_ca.pub' '%s/qvm_revoked.krl'", env.files, env.files), 0);
  assert_int_equal(session_login(SB, "127.0.0.1", NULL), 0);
  assert_int_equal(qvm_test_sh("cp '%s/ca/revoked.krl' '%s/qvm_revoked.krl'", env.state, env.files),
                   0);
  /* Each one is in the audit log, as a session certificate of the sandbox. */
  char *audit = qvm_test_sh_output(
      "'%s' audit " SB " --json | grep -o '\"kind\":\"session\"' | wc -l", env.qvm);
  assert_non_null(audit);
  assert_true(atoi(audit) >= 4);
  free(audit);
}

static void test_push_refusals(void **state) {
  (void)state;
  /* Nothing running: nothing pushed, success. A named VM that is not a
   * sandbox, or a sandbox that is not running, is named in the report. */
  char *out = qvm_test_sh_output("'%s' cert push --json; echo rc=$?", env.qvm);
  assert_contains(out, "[]\nrc=0");
  free(out);
  out = qvm_test_sh_output("'%s' cert push " PLAIN " 2>&1; echo rc=$?", env.qvm);
  assert_contains(out, "is not a sandbox");
  assert_contains(out, "rc=1");
  free(out);
  out = qvm_test_sh_output("'%s' cert push " SB " --json 2>/dev/null; echo rc=$?", env.qvm);
  assert_contains(out, "\"pushed\":false");
  assert_contains(out, "is not running");
  assert_contains(out, "rc=1");
  free(out);
  out = qvm_test_sh_output("'%s' cert push 'Bad/Name' 2>&1; echo rc=$?", env.qvm);
  assert_contains(out, "rc=");
  assert_null(strstr(out, "rc=0"));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seed_files),        cmocka_unit_test(test_host_cert_listing),
      cmocka_unit_test(test_plain_vm_has_none), cmocka_unit_test(test_sshd_with_seed_files),
      cmocka_unit_test(test_session_login),     cmocka_unit_test(test_push_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
