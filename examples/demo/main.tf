# The demo: a Debian kernel, an init with busybox and runc, and three containers of a
# probe package, from a local OCI image layout, assembled into out/demo-kernel,
# out/demo-initrd.img and out/demo-cmdline, and a Unified Kernel Image of it with
# systemd's UEFI stub, out/demo.efi. `make demo` builds the layout from Debian packages
# (scripts/boot-fixtures/build.sh), applies this, and boots the result under QEMU when
# QEMU is installed.

terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
  }
}

variable "layout" {
  description = "Directory of the OCI image layout holding the demo packages."
  type        = string
  default     = "./layout"
}

variable "output_dir" {
  description = "Where the image's artifacts are written."
  type        = string
  default     = "./out"
}

variable "cache_dir" {
  description = "Blob cache of the demo."
  type        = string
  default     = "./cache"
}

provider "resin" {
  cache_dir = var.cache_dir
}

resource "resin_kernel" "demo" {
  image   = "oci-layout:${var.layout}:kernel"
  cmdline = "console=ttyS0 panic=-1"
}

resource "resin_package" "init" {
  name  = "init"
  image = "oci-layout:${var.layout}:init"
}

# Runs once at boot with CAP_NET_ADMIN, an environment variable and a bind of a file.
resource "resin_package" "hello" {
  name         = "hello"
  image        = "oci-layout:${var.layout}:probe"
  command      = ["/usr/bin/probe", "ONBOOT"]
  capabilities = ["CAP_NET_ADMIN"]
  env          = ["PROBE_ENV=from-terraform", "PATH=/bin:/usr/bin"]
  binds        = ["/etc/resin-fixture:/probe/file:ro"]
  rlimits      = ["nofile,1024,4096"]
}

# The same image with no capabilities: it is extracted once and shared.
resource "resin_package" "unprivileged" {
  name    = "unprivileged"
  image   = "oci-layout:${var.layout}:probe"
  command = ["/usr/bin/probe", "WITHHELD"]
}

resource "resin_package" "service" {
  name    = "service"
  image   = "oci-layout:${var.layout}:probe"
  command = ["/usr/bin/probe", "SERVICE", "wait"]

  resources {
    memory {
      limit = 67108864
    }
  }
}

resource "resin_image" "demo" {
  name       = "demo"
  output_dir = var.output_dir
  kernel     = resin_kernel.demo.spec
  init       = [resin_package.init.spec]
  onboot     = [resin_package.hello.spec, resin_package.unprivileged.spec]
  services   = [resin_package.service.spec]

  file {
    path     = "/etc/resin-fixture"
    contents = "FILE-CONTENT-OK"
  }

  file {
    path     = "/etc/motd"
    contents = "Assembled by terraform-provider-resin.\n"
  }
}

# systemd's UEFI stub (Debian's systemd-boot-efi) and a Unified Kernel Image of the demo,
# which UEFI firmware boots directly.
resource "resin_efi_stub" "systemd" {
  image = "oci-layout:${var.layout}:efi-stub"
}

resource "resin_disk" "uki" {
  image  = resin_image.demo.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
}

output "artifacts" {
  description = "Where the image is, and its content hash."
  value = {
    kernel       = resin_image.demo.kernel_path
    initrd       = resin_image.demo.initrd_path
    cmdline      = resin_image.demo.cmdline_path
    content_hash = resin_image.demo.content_hash
    uki          = resin_disk.uki.path
  }
}

output "packages" {
  description = "Each package pinned to its digest, with its content hash."
  value = {
    for p in [resin_package.init, resin_package.hello, resin_package.unprivileged, resin_package.service] :
    p.name => { id = p.id, content_hash = p.content_hash }
  }
}
