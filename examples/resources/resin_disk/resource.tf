resource "resin_kernel" "k" {
  # LinuxKit's 6.12 kernels are built with CONFIG_EFI_STUB, which a UKI needs.
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

# A Unified Kernel Image: UEFI firmware boots out/node.efi directly. Its .uname is read
# from the kernel; sbat adds this image's line to the stub's SBAT metadata.
resource "resin_disk" "uki" {
  image  = resin_image.node.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
  sbat   = "node,1,Example Corp,node,1.0,https://example.com/node"
}

# A raw disk with a GPT and an EFI system partition holding that UKI: out/node-efi.img.
resource "resin_disk" "disk" {
  image  = resin_image.node.spec
  format = "raw-efi"
  stub   = resin_efi_stub.systemd.spec
}

# An iPXE script booting the kernel and initrd from a web server serving out/.
resource "resin_disk" "netboot" {
  image    = resin_image.node.spec
  format   = "ipxe"
  base_url = "http://boot.example.com/images/node"
}
