# A qvm VM as a Nomad task: raw_exec runs `qvm run` on the client, which is
# the VM's supervisor in the foreground (docs/scale-out.md, docs/cli.md
# "qvm run"). Not run here: no Nomad was available where this was written;
# tests/deploy/test_manifests.py checks its structure and timeouts.
#
#   nomad job run -var vm=web deploy/nomad/qvm.nomad.hcl
#
# raw_exec must be enabled on the clients (plugin "raw_exec" { config {
# enabled = true } }), and they run qvm as root: qvm's state is
# /var/lib/qvm, its sockets /run/qvm, as for any root qvm on the host.

variable "vm" {
  type        = string
  description = "the qvm vm's name"
  default     = "web"
}

variable "image" {
  type        = string
  description = "a catalog alias or https url (qvm image pull)"
  default     = "debian-12"
}

job "qvm-vm" {
  type = "service"

  group "vm" {
    count = 1

    # TCG works without it (slowly); uncomment to place VMs on KVM hosts only.
    # constraint {
    #   attribute = "${attr.kernel.name}"
    #   value     = "linux"
    # }
    # constraint {
    #   attribute = "${meta.qvm_kvm}"
    #   value     = "true"
    # }

    restart {
      attempts = 3
      interval = "10m"
      delay    = "15s"
      mode     = "fail"
    }

    # Pre-pull: the image is downloaded and verified once per node, before
    # the VM is created; then the vm is created on this node if it is not
    # there yet. Both are idempotent.
    task "prepare" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        command = "/bin/sh"
        args = [
          "-c",
          "{ qvm image inspect \"$QVM_IMAGE\" >/dev/null 2>&1 || qvm image pull \"$QVM_IMAGE\" --quiet; } && { qvm info \"$QVM_VM\" >/dev/null 2>&1 || qvm create \"$QVM_VM\" --image \"$QVM_IMAGE\" --net user; }",
        ]
      }

      env {
        QVM_VM    = "${var.vm}"
        QVM_IMAGE = "${var.image}"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }

    task "qvm" {
      driver = "raw_exec"

      config {
        command = "qvm"
        args    = ["run", "${var.vm}", "--timeout", "60"]
      }

      # SIGTERM presses the power button; after --timeout (60 s) qvm makes
      # QEMU quit. kill_timeout must be longer, or Nomad's SIGKILL comes
      # first (QEMU then still dies with qvm run, but uncleanly).
      kill_signal  = "SIGTERM"
      kill_timeout = "90s"

      # qvm run's own output (errors, the exit line) is on stderr; the
      # guest's console is `qvm logs -f NAME`.
      logs {
        max_files     = 3
        max_file_size = 10
      }

      resources {
        cpu    = 2000
        memory = 1300 # the guest's --memory plus QEMU's overhead
      }
    }
  }
}
