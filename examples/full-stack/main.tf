# A LinuxKit "minimal"-style machine image from public linuxkit images: init, runc,
# containerd and ca-certificates; onboot sysctl and dhcpcd; services getty and sshd.
#
# The kernel and the init images are pinned by digest (the digests linuxkit itself
# resolved for these tags). sysctl, dhcpcd, getty and sshd are given by tag here: resin
# resolves them at plan time and records the pinned reference in each package's `id`;
# copy those into `image` to pin them, as the policy pack's CKV_RESIN_1 asks.

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
  image   = "linuxkit/kernel:5.4.39@sha256:abce82efd275d51cfab5a51a791e147de6f45937c0f0b6c9f2f0a9462cb04d3a"
  cmdline = "console=tty0 console=ttyS0 console=ttyAMA0"
}

resource "resin_package" "init" {
  image = "linuxkit/init:a68f9fa0c1d9dbfc9c23663749a0b7ac510cbe1c@sha256:61113c18488f3e4bc28b0ad4674ab39b8fce930e6fb2fe9a1a1f8f09aa2b3c6d"
}

resource "resin_package" "runc" {
  image = "linuxkit/runc:v0.8@sha256:6ce7c3967af2f711d13afa6f19e787dffdb69e29753d26c534bb6f193bbe8f79"
}

resource "resin_package" "containerd" {
  image = "linuxkit/containerd:a4aa19c608556f7d786852557c36136255220c1f@sha256:66b3d74aeb855f393ddb85e7371a00d5f7994cc26b425825df2ce910583d74dc"
}

resource "resin_package" "ca_certificates" {
  image = "linuxkit/ca-certificates:v0.8@sha256:c0ca782444abfbe8f60cfdaa44cfe67a2fac9ee2e553325ef43cbc68c0c37721"
}

resource "resin_package" "sysctl" {
  image = "linuxkit/sysctl:v0.8"
}

resource "resin_package" "dhcpcd" {
  image   = "linuxkit/dhcpcd:v0.8"
  command = ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"]
}

resource "resin_package" "getty" {
  image = "linuxkit/getty:v0.8"
  env   = ["INSECURE=true"]
}

resource "resin_package" "sshd" {
  image = "linuxkit/sshd:v0.8"
}

resource "resin_image" "minimal" {
  name       = "minimal"
  output_dir = "${path.module}/out"
  kernel     = resin_kernel.kernel.spec
  init = [
    resin_package.init.spec,
    resin_package.runc.spec,
    resin_package.containerd.spec,
    resin_package.ca_certificates.spec,
  ]
  onboot   = [resin_package.sysctl.spec, resin_package.dhcpcd.spec]
  services = [resin_package.getty.spec, resin_package.sshd.spec]
  labels = {
    environment = "development"
  }

  file {
    path     = "/etc/getty.shadow"
    contents = "root::0:0:99999:7:::\n"
    mode     = "0600"
  }

  file {
    path               = "/root/.ssh/authorized_keys"
    sensitive_contents = var.authorized_keys
    mode               = "0600"
  }
}

output "artifacts" {
  description = "The kernel, initrd and cmdline, and the SBOM beside them."
  value = {
    kernel  = resin_image.minimal.kernel_path
    initrd  = resin_image.minimal.initrd_path
    cmdline = resin_image.minimal.cmdline_path
    sbom    = resin_image.minimal.sbom_path
  }
}
