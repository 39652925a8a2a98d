# The configuration the state beside this file was applied with, by the provider of
# assembly format 2 and disk format 3 (see upgrade.rs).
terraform {
  required_providers {
    resin = {
      source = "resinstack/resin"
    }
  }
}

provider "resin" {
  cache_dir = "./cache"
}

resource "resin_kernel" "k" {
  image   = "oci-layout:./layout:kernel"
  cmdline = "console=ttyS0 panic=-1"
}

resource "resin_package" "init" {
  image = "oci-layout:./layout:init"
}

resource "resin_package" "sysctl" {
  image        = "oci-layout:./layout:sysctl"
  capabilities = ["CAP_SYS_ADMIN"]
}

resource "resin_package" "sshd" {
  image = "oci-layout:./layout:sshd"
  binds = ["/etc/ssh:/etc/ssh"]
  uid   = "sshd"
}

resource "resin_image" "img" {
  name       = "up"
  output_dir = "./out"
  kernel     = resin_kernel.k.spec
  init       = [resin_package.init.spec]
  onboot     = [resin_package.sysctl.spec]
  services   = [resin_package.sshd.spec]

  file {
    path     = "/etc/motd"
    contents = "MOTD"
  }
  file {
    path = "/etc/ssh"
    directory = true
    mode = "0700"
    uid  = "sshd"
  }
}

resource "resin_disk" "pxe" {
  image    = resin_image.img.spec
  format   = "ipxe"
  base_url = "http://boot.example/images"
}
