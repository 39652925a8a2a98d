resource "resin_kernel" "lts" {
  image   = "linuxkit/kernel:6.6.13"
  cmdline = "console=tty0 console=ttyS0"
}

resource "resin_package" "init" {
  image = "linuxkit/init:v1.0.0"
}

resource "resin_package" "runc" {
  image = "linuxkit/runc:v1.0.0"
}

resource "resin_package" "dhcpcd" {
  image        = "linuxkit/dhcpcd:v1.0.0"
  command      = ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
  net          = "host"
  capabilities = ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
}

resource "resin_package" "getty" {
  image = "linuxkit/getty:v1.0.0"
  env   = ["INSECURE=true"]
}

resource "resin_image" "minimal" {
  name       = "minimal"
  output_dir = "${path.module}/out"
  kernel     = resin_kernel.lts.spec
  init       = [resin_package.init.spec, resin_package.runc.spec]
  onboot     = [resin_package.dhcpcd.spec]
  services   = [resin_package.getty.spec]

  file {
    path     = "/etc/motd"
    contents = "Welcome to a resin image.\n"
  }

  file {
    path               = "/root/.ssh/authorized_keys"
    sensitive_contents = var.authorized_keys
    mode               = "0600"
  }
}

variable "authorized_keys" {
  description = "SSH public keys allowed to log in as root."
  type        = string
  sensitive   = true
}
