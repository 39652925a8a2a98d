resource "resin_package" "p" {
  image = "linuxkit/sshd:v1.0.0"
  net   = "new"
}
resource "resin_efi_stub" "s" {
  image = "registry.example.com/boot/systemd-boot-efi:252"
}
