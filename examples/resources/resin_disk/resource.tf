# A Unified Kernel Image of the image: UEFI firmware boots it directly
# (copy it to an ESP as \EFI\BOOT\BOOTX64.EFI), as do systemd-boot and QEMU.
resource "resin_disk" "uki" {
  image  = resin_image.node.spec
  format = "uki"
  stub   = resin_efi_stub.systemd.spec
}

# An iPXE script that boots the image's kernel and initrd from a web server
# serving the image's output directory.
resource "resin_disk" "netboot" {
  image    = resin_image.node.spec
  format   = "ipxe"
  base_url = "http://boot.example.com/images/node"
}
