# An EC2 AMI from a resin image: the raw-efi disk is uploaded to S3, imported as an EBS
# snapshot and registered as a UEFI AMI, all named after the disk's content hash.

terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "bucket" {
  description = "S3 bucket the disk is uploaded to (readable by the vmimport role)."
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

resource "resin_disk" "ec2" {
  image  = resin_image.node.spec
  format = "raw-efi"
  stub   = resin_efi_stub.systemd.spec
}

locals {
  version = substr(resin_disk.ec2.content_hash, 7, 12)
}

resource "aws_s3_object" "node" {
  bucket = var.bucket
  key    = "node-${local.version}.img"
  source = resin_disk.ec2.path
}

resource "aws_ebs_snapshot_import" "node" {
  role_name = "vmimport"

  disk_container {
    format = "RAW"
    user_bucket {
      s3_bucket = aws_s3_object.node.bucket
      s3_key    = aws_s3_object.node.key
    }
  }
}

resource "aws_ami" "node" {
  name                = "node-${local.version}"
  boot_mode           = "uefi"
  ena_support         = true
  root_device_name    = "/dev/xvda"
  virtualization_type = "hvm"

  ebs_block_device {
    device_name = "/dev/xvda"
    snapshot_id = aws_ebs_snapshot_import.node.id
  }
}
