resource "resin_disk" "disk" {
  image  = resin_image.node.spec
  format = "raw-efi"
  stub   = resin_efi_stub.systemd.spec
}
