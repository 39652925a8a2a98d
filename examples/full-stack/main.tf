# A LinuxKit-style machine image from public linuxkit images: init, runc, containerd and
# ca-certificates; onboot sysctl and dhcpcd; services getty, rngd and sshd; booted in a
# VM by a boot check, then published to the fleet's registry.
#
# These are the images of LinuxKit's examples/sshd.yml and examples/minimal.yml at
# linuxkit commit 98028d41 (June 2017), which were built and booted together. Every one
# is pinned by the digest `moby build` reported when it pulled it, so this configuration
# passes the policy pack's CKV_RESIN_1 and plans the same bytes wherever it runs. For new
# images, take current linuxkit releases: resin records the digest it resolved for a tag
# in each resource's `id`, ready to be copied into `image`.

terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
  }
}

variable "authorized_keys" {
  description = "SSH public keys allowed to log in as root."
  type        = string
  sensitive   = true
}

provider "resin" {}

resource "resin_kernel" "kernel" {
  image   = "linuxkit/kernel:4.9.x@sha256:1631c1ceea2007b308ae4efeee9179c1e7d578a5dedab54fbcc64746532f2828"
  cmdline = "console=ttyS0 page_poison=1"
}

resource "resin_package" "init" {
  # checkov:skip=CKV_RESIN_4:an init image is unpacked at /, it runs in no container
  image = "linuxkit/init:17693d233dd009b2a3a8d23673cb85969e1dce80@sha256:cb2c1a01777004f34e4e1400a1deab0c7c68e252f97d5387a6708e59483228ef"
}

resource "resin_package" "runc" {
  # checkov:skip=CKV_RESIN_4:an init image is unpacked at /, it runs in no container
  image = "linuxkit/runc:3a4e6cbf15470f62501b019b55e1caac5ee7689f@sha256:e8603bafe28d72887a2db01886d326a6e309e6ad3b2ad88bb7cee9be260d2fc7"
}

resource "resin_package" "containerd" {
  # checkov:skip=CKV_RESIN_4:an init image is unpacked at /, it runs in no container
  image = "linuxkit/containerd:04880f344709830aa4c938baa765764e644fc973@sha256:dcf0518979f3611003d0459458f9a260d9f95cfe73afce034a3aef447a8e2b71"
}

resource "resin_package" "ca_certificates" {
  # checkov:skip=CKV_RESIN_4:an init image is unpacked at /, it runs in no container
  image = "linuxkit/ca-certificates:75cf419fb58770884c3464eb687ec8dfc704169d@sha256:4bd4053003322a35f1effce6aa42066b22b5d9ea7dc638ef2f804df3b3b644f2"
}

# Host namespaces, capabilities and binds come from each image's
# org.mobyproject.config label, as in LinuxKit. These containers run in the host's
# network namespace (their labels', and LinuxKit's default when nothing sets `net`):
# the annotation allows it for the policy pack's CKV_RESIN_4.
resource "resin_package" "sysctl" {
  image = "linuxkit/sysctl:3aa6bc663c2849ef239be7d941d3eaf3e6fcc018@sha256:189df608e87f237463858c86788da44b29e0bd8bd1a97fff7fcf7d32c1250edb"
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}

# One DHCP lease at boot (-1), before the services start.
resource "resin_package" "dhcpcd" {
  image   = "linuxkit/dhcpcd:7d2b8aaaf20c24ad7d11a5ea2ea5b4a80dc966f1@sha256:b1bef35accd165a4235ad301f9bef6544922cb6eafdb60268b05d8c9d0b1566b"
  command = ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}

# A root shell on the console without a password: for development images only (the
# policy pack's CKV_RESIN_5 refuses getty and sshd in images labelled production).
resource "resin_package" "getty" {
  image = "linuxkit/getty:d0765e0a14733f9454010ac109a7c846a4e67fc5@sha256:20bf26fa27071e02c83bc6d7ffa508687986051db04199b5ef9233e0395afe07"
  env   = ["INSECURE=true"]
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}

resource "resin_package" "rngd" {
  image = "linuxkit/rngd:1fa4de44c961bb5075647181891a3e7e7ba51c31@sha256:711f86b810c78f9be4d8b343053c14cfc5aa5a4ae939b398e3f3d95bbb900ce9"
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}

resource "resin_package" "sshd" {
  image = "linuxkit/sshd:abc1f5e096982ebc3fb61c506aed3ac9c2ae4d55@sha256:727da1ef4a3f61050ed8164244610388f85578aea295b54a02d7b87c72b814a9"
  annotations = {
    "resin-allow-host-namespaces" = "true"
  }
}

resource "resin_image" "sshd" {
  name       = "sshd"
  output_dir = "${path.module}/out"
  kernel     = resin_kernel.kernel.spec
  init = [
    resin_package.init.spec,
    resin_package.runc.spec,
    resin_package.containerd.spec,
    resin_package.ca_certificates.spec,
  ]
  onboot   = [resin_package.sysctl.spec, resin_package.dhcpcd.spec]
  services = [resin_package.getty.spec, resin_package.rngd.spec, resin_package.sshd.spec]
  labels = {
    environment = "development"
  }

  file {
    path               = "/root/.ssh/authorized_keys"
    sensitive_contents = var.authorized_keys
    mode               = "0600"
  }
}

# Network boot: an iPXE script that fetches the kernel and initrd over https from where
# out/ is served (the policy pack's CKV_RESIN_8 wants https).
resource "resin_disk" "netboot" {
  image    = resin_image.sshd.spec
  format   = "ipxe"
  base_url = "https://boot.example.com/images/sshd"
}

# Tested before it ships: the image boots in a VM at apply (KVM when it can, emulation
# otherwise), and the publication waits for that (the policy pack's CKV_RESIN_10).
resource "resin_boot_check" "sshd" {
  image      = resin_image.sshd.spec
  output_dir = "${path.module}/checks"
  expect     = ["Run /init as init process", "Welcome to LinuxKit"]
}

# The image in the fleet's registry, once it booted. authorized_keys are public keys, but
# they were given as sensitive_contents: publishing says so.
resource "resin_publish" "sshd" {
  images          = [resin_image.sshd.spec]
  repository      = "registry.example.com/fleet/sshd"
  tag             = "dev"
  allow_sensitive = true
  depends_on      = [resin_boot_check.sshd]
}

output "artifacts" {
  description = "The kernel, initrd and cmdline, the SBOM beside them, and the iPXE script."
  value = {
    kernel  = resin_image.sshd.kernel_path
    initrd  = resin_image.sshd.initrd_path
    cmdline = resin_image.sshd.cmdline_path
    sbom    = resin_image.sshd.sbom_path
    ipxe    = resin_disk.netboot.path
  }
}
