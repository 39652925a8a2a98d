# A Google Compute Engine image from a resin image: the gcp disk file is uploaded to a
# bucket and imported as a UEFI image. The object and image are named after the disk's
# content hash, so a plan shows exactly when a new image is built and imported.

terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
    google = {
      source = "hashicorp/google"
    }
  }
}

variable "bucket" {
  description = "Cloud Storage bucket the image file is uploaded to."
  type        = string
}

provider "resin" {}

resource "resin_kernel" "k" {
  image   = "linuxkit/kernel:6.12.59"
  cmdline = "console=ttyS0"
}

resource "resin_package" "init" {
  image = "linuxkit/init:v1.0.0"
}

resource "resin_image" "node" {
  name       = "node"
  output_dir = "${path.module}/out"
  kernel     = resin_kernel.k.spec
  init       = [resin_package.init.spec]
}

resource "resin_efi_stub" "systemd" {
  image = "registry.example.com/boot/systemd-boot-efi:252"
}

resource "resin_disk" "gce" {
  image  = resin_image.node.spec
  format = "gcp"
  stub   = resin_efi_stub.systemd.spec
}

locals {
  version = substr(resin_disk.gce.content_hash, 7, 12)
}

resource "google_storage_bucket_object" "node" {
  bucket = var.bucket
  name   = "node-${local.version}.img.tar.gz"
  source = resin_disk.gce.path
}

resource "google_compute_image" "node" {
  name = "node-${local.version}"

  raw_disk {
    source = "https://storage.googleapis.com/${google_storage_bucket_object.node.bucket}/${google_storage_bucket_object.node.name}"
  }

  guest_os_features {
    type = "UEFI_COMPATIBLE"
  }
}
