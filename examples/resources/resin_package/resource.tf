resource "resin_package" "sshd" {
  image = "linuxkit/sshd:v1.0.0"
  name  = "sshd"

  capabilities = ["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_CHOWN"]
  net          = "host"
  binds        = ["/root/.ssh:/root/.ssh", "/etc/resolv.conf:/etc/resolv.conf"]
  env          = ["SSHD_PORT=22"]
  rlimits      = ["nofile,1024,4096"]

  mounts {
    destination = "/run"
    type        = "tmpfs"
    options     = ["nosuid", "nodev", "mode=755"]
  }

  resources {
    memory {
      limit = 134217728
    }
    pids_limit = 256
  }

  runtime {
    mkdir = ["/var/lib/sshd"]
  }
}
