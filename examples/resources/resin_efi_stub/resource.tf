# systemd's UEFI stub, from an image holding Debian's systemd-boot-efi files.
resource "resin_efi_stub" "systemd" {
  image = "registry.example.com/boot/systemd-boot-efi:252"

  # The default for linux/amd64, spelled out.
  path = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
}
