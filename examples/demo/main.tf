# The demo: resolve and pull a kernel and three packages from a local OCI image layout.
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
