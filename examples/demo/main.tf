# The demo: a kernel and three packages from a local OCI image layout, assembled into
# out/demo-kernel, out/demo-initrd.img and out/demo-cmdline.
# `make demo` writes the layout (scripts/make-demo-layout.py) and runs this offline.

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
  cmdline = "console=ttyS0 console=tty0"
}

resource "resin_package" "init" {
  image = "oci-layout:${var.layout}:init"
  name  = "init"
}

resource "resin_package" "sysctl" {
  image    = "oci-layout:${var.layout}:sysctl"
  name     = "sysctl"
  net      = "host"
  pid      = "host"
  readonly = true
  capabilities = ["CAP_SYS_ADMIN"]
}

resource "resin_package" "hello" {
  image = "oci-layout:${var.layout}:hello"
  name  = "hello"
  env   = ["GREETING=hello"]
  binds = ["/var/log:/var/log"]
  rlimits = ["nofile,1024,4096"]

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
  onboot     = [resin_package.sysctl.spec]
  services   = [resin_package.hello.spec]

  file {
    path     = "/etc/motd"
    contents = "Assembled by terraform-provider-resin.\n"
  }

  file {
    path      = "/etc/hello/token"
    source    = "${path.module}/token"
    mode      = "0600"
    uid       = "hello"
    optional  = true
  }
}

output "artifacts" {
  description = "Where the image is, and its content hash."
  value = {
    kernel       = resin_image.demo.kernel_path
    initrd       = resin_image.demo.initrd_path
    cmdline      = resin_image.demo.cmdline_path
    content_hash = resin_image.demo.content_hash
  }
}

output "kernel" {
  description = "The kernel image, pinned."
  value       = resin_kernel.demo.id
}

output "packages" {
  description = "Each package pinned to its digest, with its content hash."
  value = {
    for p in [resin_package.init, resin_package.sysctl, resin_package.hello] :
    p.name => { id = p.id, content_hash = p.content_hash }
  }
}
