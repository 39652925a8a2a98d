# Test an image before it ships: assemble it, boot it in a VM with resin_boot_check, and
# let `terraform test` (Terraform 1.6 and later) assert on what the boot showed
# (boot.tftest.hcl). The packages come from the local OCI layout `make demo` and
# `make test` build from Debian packages (scripts/boot-fixtures/build.sh).
#
#   terraform test -var layout=/path/to/layout

terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
  }
}

variable "layout" {
  description = "Directory of the OCI image layout holding the kernel, init and probe packages."
  type        = string
}

variable "output_dir" {
  description = "Where the image's artifacts and the console log are written."
  type        = string
  default     = "./out"
}

# no_timer_check: an x86 kernel emulated on a busy machine (no KVM) can fall behind during
# its IO-APIC timer check and panic; skipping the check changes nothing else.
resource "resin_kernel" "node" {
  image   = "oci-layout:${var.layout}:kernel"
  cmdline = "console=ttyS0 console=ttyAMA0 panic=-1 no_timer_check"
}

resource "resin_package" "init" {
  image = "oci-layout:${var.layout}:init"
}

resource "resin_package" "service" {
  name    = "service"
  image   = "oci-layout:${var.layout}:probe"
  command = ["/usr/bin/probe", "SERVICE", "wait"]
}

resource "resin_image" "node" {
  name       = "node"
  output_dir = var.output_dir
  kernel     = resin_kernel.node.spec
  init       = [resin_package.init.spec]
  services   = [resin_package.service.spec]
}

# Boots the image at apply (KVM when it can, emulation otherwise); the apply fails, with
# the console, unless these appear in order and no failure pattern does.
resource "resin_boot_check" "node" {
  image      = resin_image.node.spec
  output_dir = var.output_dir
  expect     = ["Run /init as init process", "RESIN-INIT-OK", "RESIN-SERVICE-OK", "RESIN-BOOT-DONE"]
  fail_on    = ["Kernel panic", "Failed to execute /init", "runc run failed", "RESIN-SERVICE-EXITED"]
}

output "boot" {
  description = "How long the image took to come up, and when each pattern appeared."
  value = {
    seconds     = resin_boot_check.node.boot_seconds
    matches     = resin_boot_check.node.matches
    console_log = resin_boot_check.node.console_log
    accelerator = resin_boot_check.node.accelerator
  }
}
